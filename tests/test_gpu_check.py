"""``bash benchmarks/gpu_check.sh --dry-run``: the GPU check's code path on the CPU at the test preset, from the
source tree with PYTHONPATH only (no installed package needed), writing its table to $OUT/RESULTS.md."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_and_prints_its_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANK", "WORLD_SIZE")}
    env.update(OUT=str(tmp_path), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="2")
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    text = out.stdout
    assert "Python " in text and "torch " in text and "device: CPU" in text
    for method in ("attngan", "dmgan", "ecagan", "caegan"):
        assert f"| {method} | fp32 | pass | yes |" in text
        assert f"| {method} | bf16+channels_last | pass | yes |" in text
        assert any(line.startswith(f"| {method} | pass | 8 |") for line in text.splitlines())
    assert "timing only" in text
    report = (tmp_path / "RESULTS.md").read_text()
    assert report.startswith("# gpu_check") and "| method | mode | pass |" in report


def test_gpu_check_reports_a_missing_required_package(tmp_path):
    """Without pyyaml on the path the script says what is missing and how to carry the wheel."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nclass _B:\n    def find_spec(self, name, path=None, target=None):\n"
                       "        if name == 'yaml':\n            raise ImportError('blocked')\n"
                       "sys.meta_path.insert(0, _B())\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(tmp_path), PYTHON=sys.executable)
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3
    assert "missing required package(s): pyyaml" in out.stderr and "benchmarks/wheels" in out.stderr


@pytest.mark.slow
def test_gpu_check_runs_without_tqdm(tmp_path):
    """A bare GPU machine may lack tqdm (a dependency of the installed harness, not of this script): the script
    puts a silent stand-in in its place and the training step and evaluation still run."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['tqdm'] = None  # import tqdm raises ImportError\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RANK", "WORLD_SIZE")}
    env.update(PYTHONPATH=str(tmp_path), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="2")
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--methods", "dmgan"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "tqdm            absent" in out.stdout
    assert "| dmgan | fp32 | pass | yes |" in out.stdout and any(
        line.startswith("| dmgan | pass | 8 |") for line in out.stdout.splitlines())
