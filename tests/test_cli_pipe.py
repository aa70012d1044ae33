"""A verb whose output goes into a pipe that the reader already closed (`harness table | head -1`) ends quietly:
exit 0 or 141, nothing on stderr about the pipe. Real pipes, real processes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.build import prepare_config
from harness.contract.plugins import build_plugins
from harness.core.runfiles import Record
from harness.core.rundir import RunDir, new_eval_id

REPO = Path(__file__).resolve().parents[1]


def _into_closed_pipe(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``python -m harness argv`` with its stdout the write end of a pipe whose read end is already closed
    (every write fails with EPIPE, as after `head -1` exits)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        return subprocess.run([sys.executable, "-m", "harness", *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=300, cwd=tmp_path, env=env)
    finally:
        os.close(write_end)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results root with one dmgan run on shapes and its records (a table has a row to print)."""
    root = tmp_path_factory.mktemp("pipe") / "results"
    plugins = build_plugins()
    cfg = prepare_config(plugins, "dmgan", dataset="shapes", data_dir=None, preset="smoke", overrides=[], seed=0)
    run = RunDir.create(root, name="dmgan-s0")
    run.save_config(cfg)
    run.append_records([Record(method="dmgan", dataset="shapes", seed=0, metric=m, value=v,
                               eval_id=new_eval_id()) for m, v in (("rp", 12.5), ("probe_acc", 40.0))])
    return root


@pytest.mark.parametrize("argv", [["table"], ["table", "--format", "csv"], ["metrics"], ["plugins", "--hooks"]])
def test_a_closed_pipe_ends_quietly(argv, results, tmp_path):
    out = _into_closed_pipe([*argv, "--results-dir", str(results)], tmp_path)
    assert out.returncode in (0, 141), out.stderr
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr and "Broken pipe" not in out.stderr
