"""Two gloo processes on the loopback interface against one process (harness.core.distributed):

* training a per-sample method (``tests/distributed_tiny_method.py``, SyncBatchNorm through ``train.sync_bn``,
  conditioning augmentation drawing ε inside G) for 2 steps of global batch 8 gives the same parameters on 2 ranks
  (4 samples each) as on 1 rank, to 1e-5;
  only rank 0 writes (one run directory, its checkpoints and log); resume continues the distributed run;
* evaluation sharded over 2 ranks gives exactly the 1-rank numbers.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.core import distributed as D

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_tiny_method.py"
TRAIN = ["train", "--plugins", "distgan", "--dataset", "shapes", "--preset", "test"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent), CUDA_VISIBLE_DEVICES="", **extra)
    return env


def run_ranks(directory: Path, args: list[str], world: int) -> list[subprocess.CompletedProcess]:
    """``harness ARGS`` in ``world`` processes (world 1: no distributed environment at all)."""
    cmd = [sys.executable, str(WORKER), str(directory), *args]
    if world == 1:
        out = [subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)]
    else:
        port = str(_free_port())
        procs = [subprocess.Popen(cmd, env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                                MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    for r, o in enumerate(out):
        assert o.returncode == 0, f"rank {r} failed:\n{o.stdout[-3000:]}\n{o.stderr[-3000:]}"
    return out


def _state(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step-{step}.pt", weights_only=True)


def _assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One shared results root (so both runs use the same cached DAMSM): a 1-rank and a 2-rank training."""
    directory = tmp_path_factory.mktemp("dist")
    root = directory / "results"
    one = run_ranks(directory, [*TRAIN, "--results-dir", str(root)], 1)
    two = run_ranks(directory, [*TRAIN, "--results-dir", str(root)], 2)
    run1 = Path(one[0].stdout.strip().splitlines()[-1])
    run2 = Path(two[0].stdout.strip().splitlines()[-1])
    return directory, root, run1, run2, two


@pytest.mark.slow
def test_two_ranks_train_like_one(runs):
    directory, root, run1, run2, two = runs
    assert run1 != run2 and run2.parent == root
    assert two[1].stdout.strip() == ""  # rank 1 prints nothing; rank 0 prints the run path last
    runs_made = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert len(runs_made) == 2, runs_made  # rank 1 made no run directory of its own
    for step in (1, 2):
        a, b = _state(run1, step), _state(run2, step)
        _assert_close(a["generator"], b["generator"], 1e-5)
        _assert_close(a["discriminators"], b["discriminators"], 1e-5)
        _assert_close(a["generator_ema"], b["generator_ema"], 1e-5)
    log = [json.loads(line) for line in (run2 / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]  # one writer


@pytest.mark.slow
def test_two_rank_resume_continues(runs):
    directory, root, run1, run2, two = runs
    for p in (run2 / "checkpoints").glob("step-2.pt"):
        p.unlink()
    run_ranks(directory, ["train", "--resume", str(run2), "--results-dir", str(root)], 2)
    _assert_close(_state(run1, 2)["generator"], _state(run2, 2)["generator"], 1e-5)


@pytest.mark.slow
def test_two_rank_evaluation_equals_one_rank(runs):
    directory, root, run1, run2, two = runs
    args = ["evaluate", str(run1), "--metrics", "rp,probe_acc,probe_fid", "--results-dir", str(root)]
    run_ranks(directory, args, 1)
    run_ranks(directory, args, 2)
    records = [json.loads(line) for line in (run1 / "records.jsonl").read_text().splitlines()]
    assert len(records) == 6  # rank 1 wrote nothing
    one, two_ = records[:3], records[3:]
    for a, b in zip(one, two_):
        assert a["metric"] == b["metric"] and a["status"] == b["status"] == "ok", (a, b)
        assert a["value"] == b["value"] and a.get("std") == b.get("std"), (a, b)


@pytest.mark.slow
def test_two_rank_dfgan_steps_equal_one_rank(tmp_path):
    # DF-GAN's D pairs each real image with the next item's sentence features: on 2 ranks the pair of a rank's
    # last item is the other rank's first (Step.roll_batch), and the global batch is shared out in the order one
    # process trains it, so 2 processes of 2 items take the steps 1 process of 4 does
    root = tmp_path / "results"
    args = ["train", "--plugins", "dfgan", "--dataset", "shapes", "--preset", "test", "--results-dir", str(root)]
    run1 = Path(run_ranks(tmp_path, args, 1)[0].stdout.strip().splitlines()[-1])
    run2 = Path(run_ranks(tmp_path, args, 2)[0].stdout.strip().splitlines()[-1])
    a, b = _state(run1, 2), _state(run2, 2)
    _assert_close(a["generator"], b["generator"], 1e-5)
    _assert_close(a["discriminators"], b["discriminators"], 1e-5)


def test_roll_batch_in_one_process_is_the_next_row():
    x = torch.arange(6.0).view(3, 2)
    assert D.roll_batch(x).tolist() == [[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]]


def test_sharding_helpers():
    info = D.DistInfo(rank=1, world_size=2)
    assert D.local_slice(8, info) == slice(4, 8)
    assert D.shard_batches([[5, 1, 7, 3], [0, 2, 4, 6]], info) == [[7, 3], [4, 6]]
    with pytest.raises(D.HarnessError, match="divisible"):
        D.local_slice(7, info)
    blocks = [D.owned_batches(7, D.DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert [i for b in blocks for i in b] == list(range(7))  # contiguous, in order, no padding
    assert D.owned_batches(2, D.DistInfo(rank=0, world_size=4)) == range(0, 0)  # a rank may get none
    single = D.DistInfo()
    assert D.shard_batches([[3, 1]], single) == [[3, 1]] and not single.enabled and single.is_main


def test_sample_noise_is_per_item():
    from harness.core.seed import sample_noise

    z = sample_noise(0, 3, [5, 9, 2, 7], 6)
    assert z.shape == (4, 6)
    assert torch.equal(sample_noise(0, 3, [2, 7], 6), z[2:])  # same row whichever batch position draws it
    assert not torch.equal(sample_noise(0, 4, [5], 6), z[:1])  # a new draw each step


def test_state_merge_concatenates_in_rank_order():
    class Stream:
        distributed_state = ("_generated",)

        def __init__(self, parts):
            self._generated = {"a": parts}

    class Metric:
        distributed_state = ("stream", "hits")

        def __init__(self, stream, hits):
            self.stream, self.hits = stream, hits

    objs = D._stateful_objects([Metric(Stream([1]), [2])])
    assert [type(o).__name__ for o in objs] == ["Metric", "Stream"]
    assert D._concat([{"a": [1]}, {"a": [2, 3]}, {}]) == {"a": [1, 2, 3]}
    assert D._concat([[1], [], [2]]) == [1, 2]
    with pytest.raises(D.HarnessError, match="distributed_state"):
        D._stateful_objects([object()])


def test_cpu_sync_batchnorm_converts_and_matches_batchnorm_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.Sequential(
        torch.nn.BatchNorm1d(2)))
    conv = D.convert_sync_bn(net, torch.device("cpu"))
    assert isinstance(conv[1], D.CpuSyncBatchNorm) and isinstance(conv[2][0], D.CpuSyncBatchNorm)
    ref = torch.nn.BatchNorm2d(4)
    x = torch.randn(6, 4, 3, 3)
    torch.testing.assert_close(conv[1](x), ref(x))  # one process: plain BatchNorm
    torch.testing.assert_close(conv[1].running_var, ref.running_var)
