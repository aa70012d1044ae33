"""Time and peak memory of ECAGAN's ``carafe`` against the naive unfold-then-repeat CARAFE.

    python benchmarks/carafe_memory.py [--channels 64] [--size 128] [--batch 1] [--k-up 5] [--scale 2]
                                       [--repeats 5] [--threads 2] [--device cpu|cuda]

Both implementations reassemble the same x (B×C×H×W) with the same softmax-normalised kernels
(B×k²×σH×σW); the script checks that their outputs agree first.

* ``carafe``: plugins/ecagan/content_aware_upsample.py (a loop over the k² offsets accumulating into the output
  viewed per sub-pixel phase; never builds a B×C×k²×σH×σW tensor).
* ``naive``: unfold x at the low resolution into B×C·k²×H×W, nearest-upsample (repeat) that to B×C·k²×σH×σW,
  multiply with the kernels and sum over the k² taps (the common pure-PyTorch CARAFE).

Method. Every (implementation, mode) runs in a fresh subprocess, so the peak of one cannot hide another's.
Peak memory on CPU: the process's resident-set high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
after one call minus its value right after the inputs were built, i.e. the extra memory one call needs at its
peak (allocator effects included; memory freed while the inputs were built and reused by the call is not
counted, so small figures are approximate). On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated
before the call. Time: wall clock (``time.perf_counter``, with ``cuda.synchronize`` on CUDA), median of
``--repeats`` calls after one warm-up, and the process CPU time of the same calls (all threads; steadier than
the wall clock on a shared machine). Modes: ``forward`` (no_grad) and ``forward+backward`` (input and kernels
require grad; backward of the output's sum).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugins.ecagan.content_aware_upsample import carafe  # noqa: E402


def naive_carafe(x: torch.Tensor, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """Unfold-then-repeat CARAFE: materialises B×C×k²×σH×σW."""
    b, c, h, w = x.shape
    patches = F.unfold(x, k_up, padding=k_up // 2).view(b, c * k_up * k_up, h, w)  # B×C·k²×H×W
    patches = F.interpolate(patches, scale_factor=scale, mode="nearest")  # B×C·k²×σH×σW
    patches = patches.view(b, c, k_up * k_up, h * scale, w * scale)
    return (patches * kernels.unsqueeze(1)).sum(dim=2)


IMPLEMENTATIONS = {"carafe": carafe, "naive": naive_carafe}


def _inputs(args: argparse.Namespace, requires_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hs = args.size * args.scale
    x = torch.randn(args.batch, args.channels, args.size, args.size, generator=g)
    k = torch.randn(args.batch, args.k_up ** 2, hs, hs, generator=g).softmax(dim=1)
    x, k = x.to(args.device), k.to(args.device)
    return x.requires_grad_(requires_grad), k.requires_grad_(requires_grad)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args: argparse.Namespace) -> dict:
    """One (implementation, mode) in this process: extra peak memory of one call, then the median time."""
    torch.set_num_threads(args.threads)
    fn = IMPLEMENTATIONS[args.impl]
    backward = args.mode == "forward+backward"
    x, k = _inputs(args, backward)

    def call() -> None:
        if backward:
            fn(x, k, args.k_up, args.scale).sum().backward()
            x.grad = k.grad = None
        else:
            with torch.no_grad():
                fn(x, k, args.k_up, args.scale)

    cuda = args.device.startswith("cuda")
    if cuda:
        _sync(args.device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    call()
    _sync(args.device)
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    times, cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        _sync(args.device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return {"impl": args.impl, "mode": args.mode, "peak_extra_MiB": (peak - base) / 2 ** 20,
            "time_s_median": statistics.median(times), "cpu_s_median": statistics.median(cpu_times),
            "times_s": [round(t, 4) for t in times]}


def check_agreement(args: argparse.Namespace) -> float:
    """Max |carafe − naive| on a smaller copy of the problem (same code paths)."""
    small = argparse.Namespace(**{**vars(args), "size": min(args.size, 16), "batch": 1})
    x, k = _inputs(small, False)
    with torch.no_grad():
        return (carafe(x, k, args.k_up, args.scale) - naive_carafe(x, k, args.k_up, args.scale)).abs().max().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", type=int, default=128, help="input side H = W (output is scale·size)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--k-up", type=int, default=5)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--modes", default="forward,forward+backward")
    p.add_argument("--impl", default=None, help=argparse.SUPPRESS)  # internal: one measurement
    p.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.impl:
        print(json.dumps(measure(args)))
        return

    out_side = args.size * args.scale
    print(f"carafe vs naive unfold-then-repeat: B={args.batch}, C={args.channels}, {args.size}² → {out_side}², "
          f"k_up={args.k_up}, σ={args.scale}, device={args.device}, threads={args.threads}, torch {torch.__version__}")
    print(f"max |carafe − naive| (16² check) = {check_agreement(args):.2e}")
    elem = 4 * args.batch * args.channels * out_side ** 2
    print(f"output tensor: {elem / 2 ** 20:.1f} MiB; naive's B×C×k²×σH×σW tensor: "
          f"{elem * args.k_up ** 2 / 2 ** 20:.1f} MiB")
    peak_how = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "ru_maxrss delta"
    print(f"peak = extra memory of one call ({peak_how}, fresh process each); time = median of {args.repeats}")
    print(f"{'impl':8s} {'mode':17s} {'peak MiB':>10s} {'wall s':>9s} {'cpu s':>9s}")
    base = [sys.executable, __file__] + [a for a in sys.argv[1:]]
    for mode in args.modes.split(","):
        for impl in IMPLEMENTATIONS:
            res = subprocess.run(base + ["--impl", impl, "--mode", mode], capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{impl:8s} {mode:17s} {r['peak_extra_MiB']:10.1f} {r['time_s_median']:9.4f} "
                  f"{r['cpu_s_median']:9.4f}")


if __name__ == "__main__":
    main()
