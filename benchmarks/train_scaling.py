"""Training speed of every method's ``paper-cub`` preset over batch sizes, by phase, with peak memory, for the
optimised mode and the baseline mode of the same code in the same process (a table; never a timed test).

    python benchmarks/train_scaling.py                        # CPU: batches 4, 8; CUDA: 4, 8, 16, 32, 64
    python benchmarks/train_scaling.py --methods attngan,dmgan --batches 8 --threads 2 --reps 3

Modes (both on the same random-weight models and the same synthetic CUB-shaped batch, ``train_speed.py``'s):

* ``optimised``: the engine as it trains (``Precision.from_config``): on CUDA bf16 autocast (losses fp32),
  channels_last, fused Adam, ``--compile`` for ``torch.compile`` of G; on the CPU fp32; and the generator step
  skips the discriminators' weight gradients;
* ``baseline``: fp32, NCHW, plain Adam, no compile, in the reference's op order (D weight gradients computed
  in the G step, the per-caption words-loss loop).

On the CPU at batch 8 with 2 threads the REFERENCE.md A6 figures (AttnGAN 25.67 s, DM-GAN 39.83 s) are printed
beside, for context. Peak memory: CUDA max allocated per mode; on the CPU the process's maximum RSS so far.
For one method at one batch size with the reference comparison per phase, ``train_speed.py`` is the tool.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check import StepResult, time_training  # noqa: E402
from train_speed import PHASES, REFERENCE  # noqa: E402


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=None, help="comma-separated (default: every installed method)")
    ap.add_argument("--preset", default="paper-cub")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (CPU 4,8; CUDA 4,8,16,32,64)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="optimised mode: torch.compile the generator")
    ap.add_argument("--vocab-size", type=int, default=5450)
    args = ap.parse_args(argv)

    import torch

    from harness.build import build_method
    from harness.config import build_config
    from harness.contract.plugins import build_plugins
    from harness.core.runtime import Precision, resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    plugins = build_plugins()
    methods = [m.strip() for m in (args.methods or ",".join(sorted(plugins.methods()))).split(",") if m.strip()]
    batches = [int(b) for b in (args.batches or ("4,8,16,32,64" if cuda else "4,8")).split(",")]
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"train_scaling: {args.preset}, {where}, torch {torch.__version__}; random weights (speed only); "
          f"median of {args.reps} after {args.warmup} warm-up", flush=True)
    rows: list[tuple[int, StepResult]] = []
    for method in methods:
        info = plugins.method(method)
        for b in batches:
            cfg = build_config(method, info.defaults, preset=args.preset, dataset="cub",
                               overrides=[f"train.batch_size={b}", f"train.compile={args.compile}"],
                               section_types=info.config_sections)
            torch.manual_seed(0)
            modules = build_method(plugins, cfg, args.vocab_size)
            for mode in ("baseline", "optimised"):
                prec = Precision(device) if mode == "baseline" else Precision.from_config(cfg, device)
                t0 = time.perf_counter()
                r = time_training(plugins, method, cfg, modules, device, mode, args.reps, args.vocab_size,
                                  warmup=args.warmup, precision=prec, reference_order=mode == "baseline")
                print(f"  {method} batch {b} {mode}: {r.seconds:.3f} s/it ({time.perf_counter() - t0:.0f} s) "
                      f"{r.error}", flush=True)
                rows.append((b, r))
            del modules
            if cuda:
                torch.cuda.empty_cache()

    mem = "peak MiB" if cuda else "max RSS MiB"
    print()
    print(f"| method | batch | mode | {' | '.join(PHASES)} | s/iteration | images/s | {mem} | optimised/baseline | "
          f"vs reference A6 |")
    print("|---|---:|---|" + "---:|" * (len(PHASES) + 5))
    base = {(r.method, b): r for b, r in rows if r.mode == "baseline"}
    for b, r in rows:
        ratio = ""
        if r.mode == "optimised" and (r.method, b) in base:
            ratio = f"{r.seconds / base[(r.method, b)].seconds:.3f}"
        ref = REFERENCE.get(r.method) if (not cuda and b == 8 and args.threads == 2
                                          and args.preset == "paper-cub") else None
        vs = f"{r.seconds / ref['iteration'][0]:.3f} of {ref['iteration'][0]} s" if ref else ""
        phases = " | ".join(f"{r.phases.get(p, float('nan')):.3f}" for p in PHASES)
        print(f"| {r.method} | {b} | {r.mode} | {phases} | {r.seconds:.3f} | {r.images_per_s:.2f} | "
              f"{r.peak_mib:.0f} | {ratio} | {vs} |" + (f" FAILED: {r.error}" if r.error else ""))
    return 0 if all(r.ok for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
