"""`harness run`: Ctrl-C names the interrupted run and the (method, seed) pairs not started; `harness run --resume
SESSION` keeps the finished runs, resumes the interrupted one, runs the rest, then writes the table; run ids
have the format the README gives (issue 13 item 11)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core_tiny_method import TinyMethod
from harness.cli import main
from harness.contract.plugins import build_plugins, hookimpl

REPO = Path(__file__).resolve().parents[1]
RUN_ID = re.compile(r"(?P<method>[a-z0-9]+)-(?P<dataset>[a-z0-9]+)-s(?P<seed>\d+)-\d{8}-\d{6}-[0-9a-f]{4}")


class CtrlC:
    """Presses Ctrl-C once, at ``step`` of the run named ``name`` (None: any run), as a KeyboardInterrupt from a
    lifecycle hook."""

    def __init__(self, name: str | None, step: int):
        self.name, self.step, self.pressed = name, step, False

    @hookimpl
    def harness_on_step_end(self, run, step, logs):
        if not self.pressed and self.name in (None, Path(run.path).name) and step.iteration == self.step:
            self.pressed = True
            raise KeyboardInterrupt


def _step_numbers(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ctrl_c_names_the_run_and_resume_continues_the_session(tmp_path, results_root, capsys):
    ctrl_c = CtrlC("tinygan-s1", step=3)
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny"), ctrl_c])
    argv = ["run", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--seeds", "0,1,2",
            "--set", "train.max_steps=4", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
            "--no-eval"]
    assert main(argv, plugins=plugins) == 130
    (session,) = [p for p in results_root.iterdir() if not p.name.startswith(".")]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness:")]
    assert len(err) == 1, err
    assert f"run {session / 'tinygan-s1'}" in err[0] and "(tinygan, 2)" in err[0] and "(tinygan, 0)" not in err[0]
    assert f"harness run --resume {session}" in err[0]
    assert not (session / "tinygan-s2").exists() and not (session / "table.md").exists()
    finished = (session / "tinygan-s0" / "checkpoints" / "step-4.pt").read_bytes()

    assert main(["run", "--resume", session.name], plugins=plugins) == 0
    out = capsys.readouterr().out
    assert "resume: step-2.pt" in out  # the interrupted run continues from its last checkpoint
    assert (session / "tinygan-s0" / "checkpoints" / "step-4.pt").read_bytes() == finished  # kept, not retrained
    assert _step_numbers(session / "tinygan-s0") == [1, 2, 3, 4]
    assert _step_numbers(session / "tinygan-s1") == [1, 2, 3, 4]  # step 3 again, after the cut at step 2
    assert (session / "tinygan-s2" / "checkpoints" / "step-4.pt").exists()
    rows = (session / "table.csv").read_text().splitlines()
    assert rows and "tinygan" in (session / "table.md").read_text()


def test_resume_of_a_directory_that_is_no_session_is_one_line(tmp_path, results_root, capsys):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    (results_root / "20260101-000000-abcd").mkdir(parents=True)
    assert main(["run", "--resume", "20260101-000000-abcd"], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert "not a `harness run` session" in err and len(err.splitlines()) == 1
    assert main(["run", "--resume", "../elsewhere"], plugins=plugins) == 2
    assert "not a run id" in capsys.readouterr().err
    assert main(["run", "--resume", "20260101-000000-abcd", "--seeds", "0,1"], plugins=plugins) == 2
    assert "drop --seeds" in capsys.readouterr().err  # the saved request is not silently changed


@pytest.mark.slow
def test_train_run_id_has_the_readme_format(tmp_path, results_root, capsys):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    assert main(["train", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--seed", "3"],
                plugins=plugins) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    m = RUN_ID.fullmatch(run.name)
    assert m and (m["method"], m["dataset"], m["seed"]) == ("tinygan", "shapes", "3"), run.name
    readme = (REPO / "README.md").read_text()
    examples = [e for e in re.findall(r"harness train --resume (\S+?)`", readme) if e != "RUN"]  # RUN: placeholder
    assert examples and all(RUN_ID.fullmatch(e) for e in examples), examples  # README examples: ids the code makes


@pytest.mark.slow
def test_ctrl_c_in_train_names_the_run_and_its_last_checkpoint(tmp_path, results_root, capsys):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny"), CtrlC(None, step=3)])
    argv = ["train", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--set", "train.max_steps=4"]
    assert main(argv, plugins=plugins) == 130
    (run,) = [p for p in results_root.iterdir() if p.name.startswith("tinygan-")]
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness:")]
    assert f"run {run}" in err and str(run / "checkpoints" / "step-2.pt") in err
    assert f"harness train --resume {run}" in err


class BrokenGenerator(TinyMethod):
    """A tiny method whose generator hook raises until ``fixed`` is set."""

    fixed = False

    @hookimpl
    def harness_generator(self, cfg, aux):
        if not self.fixed:
            raise RuntimeError("no generator\ntoday")
        return super().harness_generator(cfg, aux)


@pytest.mark.slow
def test_a_failing_method_is_recorded_and_the_session_goes_on(tmp_path, results_root, capsys):
    broken = BrokenGenerator(tmp_path / "broken", name="brokengan")
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny"), broken])
    argv = ["run", "--plugins", "brokengan,tinygan", "--dataset", "shapes", "--preset", "test", "--seeds", "0",
            "--set", "train.max_steps=2", "--no-eval"]
    assert main(argv, plugins=plugins) == 1
    captured = capsys.readouterr()
    (session,) = [p for p in results_root.iterdir() if not p.name.startswith(".")]
    assert captured.out.strip().splitlines()[-1] == str(session)  # the session directory is still printed last
    line = "method 'brokengan': harness_generator raised RuntimeError: no generator today"
    request = json.loads((session / "session.json").read_text())
    assert request["failed"] == {"brokengan-s0": line} and request["done"] == ["tinygan-s0"]
    assert json.loads((session / "brokengan-s0" / "run.json").read_text())["failed"] == line
    assert (session / "tinygan-s0" / "checkpoints" / "step-2.pt").is_file()  # trained after the failure
    summary = [e for e in captured.err.splitlines() if e.startswith("harness:")]
    assert len(summary) == 1 and "brokengan-s0: " + line in summary[0] and f"--resume {session}" in summary[0]
    table = (session / "table.md").read_text()
    (row,) = [r for r in table.splitlines() if r.startswith("| brokengan")]
    marker = re.search(r"\[(\w)\]", row)[1]
    assert f"[{marker}] failed: {line}" in table.splitlines()
    assert "failed: " not in "".join(r for r in table.splitlines() if r.startswith("| tinygan"))
    report = (session / "report.html").read_text()
    assert "<td>failed</td><td>" + line.replace("'", "&#39;") in report

    finished = (session / "tinygan-s0" / "checkpoints" / "step-2.pt").read_bytes()
    broken.fixed = True
    assert main(["run", "--resume", session.name], plugins=plugins) == 0  # the failed run is retried
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == str(session)
    request = json.loads((session / "session.json").read_text())
    assert request["failed"] == {} and sorted(request["done"]) == ["brokengan-s0", "tinygan-s0"]
    assert (session / "tinygan-s0" / "checkpoints" / "step-2.pt").read_bytes() == finished  # not retrained
    assert (session / "brokengan-s0" / "checkpoints" / "step-2.pt").is_file()
    assert "failed" not in json.loads((session / "brokengan-s0" / "run.json").read_text())
    assert "failed:" not in (session / "table.md").read_text()
