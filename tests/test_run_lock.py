"""One writer per run: train, train --resume and evaluate of a run hold an flock on it (a second writer is refused
in one line naming the holder's pid; the lock dies with its process), and a damaged newest checkpoint is named as
damaged and resumed past."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.build import prepare_config
from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.core import checkpoint as ck
from harness.core.rundir import RunBusyError, RunDir, run_lock

PLUGINS = build_plugins()

HOLDER = """
import sys
from pathlib import Path
from harness.core.rundir import RunDir, run_lock
with run_lock(RunDir(Path(sys.argv[1])), "train --resume"):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def run(tmp_path) -> RunDir:
    run = RunDir.create(tmp_path / "results", name="attngan-shapes-s0-x")
    run.save_config(prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test",
                                   overrides=["train.max_steps=1"], seed=0))
    return run


@pytest.fixture
def holder(run: RunDir):
    """Another process holding the run's lock (as a `train --resume` would) until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("verb", [["evaluate"], ["train", "--resume"]])
def test_a_second_writer_is_refused_naming_the_holder(verb: list[str], run: RunDir, holder, capsys):
    records_before = run.records_path.exists()
    rc = main([*verb, str(run.path), "--results-dir", str(run.path.parent)], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"process {holder.pid} (train --resume)" in err and str(run.path) in err, err
    assert run.records_path.exists() == records_before and not run.log_path.exists()  # nothing written


def test_the_lock_dies_with_its_process(run: RunDir, holder):
    with pytest.raises(RunBusyError, match=f"process {holder.pid} "):
        with run_lock(run, "evaluate"):
            pass
    holder.send_signal(signal.SIGKILL)  # no clean-up runs: the OS releases the flock
    holder.wait()
    with run_lock(run, "evaluate"):
        assert (run.path / ".writer.lock").read_text().split() == [str(os.getpid()), "evaluate"]


def test_one_process_cannot_take_a_run_twice(run: RunDir):
    with run_lock(run, "train"):
        with pytest.raises(RunBusyError, match=f"process {os.getpid()} \\(train\\)"):
            with run_lock(run, "evaluate"):
                pass
    with run_lock(run, "evaluate"):  # released on leaving the block
        pass


# ------------------------------------------------------------------------------------------------------
# Damaged checkpoints
# ------------------------------------------------------------------------------------------------------
def _state(value: float) -> dict:
    return {"generator": {"w": torch.full((64,), value)}, "epoch": 0, "position": 0}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_data_byte(path: Path) -> None:
    """Change one byte inside a tensor's stored bytes (torch.load alone would read the wrong value)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename)
    data = bytearray(path.read_bytes())
    local = info.header_offset  # the local header's own name and extra lengths (torch pads the extra field)
    start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") + \
        int.from_bytes(data[local + 28:local + 30], "little")
    data[start + 8] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,words", [(_truncate, "truncated"), (_flip_a_data_byte, "fails its CRC")])
def test_a_damaged_checkpoint_is_named_damaged_not_refused(damage, words: str, tmp_path):
    run = RunDir.create(tmp_path, name="run")
    path = ck.save_checkpoint(run, _state(1.0), 3)
    damage(path)
    with pytest.raises(ck.CheckpointDamagedError) as e:
        ck.load_checkpoint(path)
    msg = str(e.value)
    assert f"checkpoint {path} is damaged" in msg and words in msg and "refusing" not in msg and "\n" not in msg


def test_resume_falls_back_past_damaged_checkpoints(tmp_path, capsys):
    run = RunDir.create(tmp_path, name="run")
    for step in (2, 4, 6):
        ck.save_checkpoint(run, _state(float(step)), step)
    _truncate(run.checkpoints / "step-6.pt")
    _flip_a_data_byte(run.checkpoints / "step-4.pt")
    path, state = ck.newest_good_checkpoint(run)
    assert path.name == "step-2.pt" and state["step"] == 2 and torch.equal(state["generator"]["w"],
                                                                             torch.full((64,), 2.0))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "step-6.pt is damaged" in err and "step-4.pt is damaged" in err, err
    assert "resuming from step-2.pt" in err
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step-2.pt", "step-4.pt.damaged",
                                                                  "step-6.pt.damaged"]
    assert list(ck.list_checkpoints(run)) == [2]
    _truncate(run.checkpoints / "step-2.pt")
    with pytest.raises(ck.CheckpointDamagedError, match="no good checkpoint left"):
        ck.newest_good_checkpoint(run)


@pytest.mark.usefixtures("one_thread")
def test_train_resume_continues_from_the_previous_good_checkpoint(results_root: Path, capsys):
    pytest.importorskip("plugins.attngan")
    from harness.train.engine import train_method

    cfg = prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test", seed=0,
                         overrides=["train.max_steps=4", "train.checkpoint_every=2", "train.sample_every=0",
                                    "train.log_every=1", "data.shapes.train_images=16"])
    run = RunDir.create(results_root, name="attngan-shapes-s0-r")
    run.save_config(cfg)
    train_method(PLUGINS, cfg, run, resume=False, root=results_root)
    assert list(ck.list_checkpoints(run)) == [2, 4]
    _truncate(run.checkpoints / "step-4.pt")
    capsys.readouterr()
    assert main(["train", "--resume", str(run.path), "--results-dir", str(results_root)], plugins=PLUGINS) == 0
    captured = capsys.readouterr()
    assert "step-4.pt is damaged" in captured.err and "resuming from step-2.pt" in captured.err, captured.err
    assert "resume: step-2.pt (step 2" in captured.out
    assert [e["step"] for e in run.read_log()] == [1, 2, 3, 4]
    assert ck.load_checkpoint(run.checkpoints / "step-4.pt")["step"] == 4
    assert (run.checkpoints / "step-4.pt.damaged").is_file()


def test_only_rank_0_of_a_torchrun_launch_takes_the_lock(run: RunDir, monkeypatch):
    """Every rank trains the run; the lock belongs to the launch, taken by the rank that writes files."""
    with run_lock(run, "train"):
        monkeypatch.setenv("RANK", "1")
        with run_lock(run, "train"):  # rank 1 beside rank 0's lock: not refused
            pass
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(RunBusyError):
            with run_lock(run, "train"):
                pass
