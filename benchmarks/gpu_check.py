"""One-GPU check of the training and evaluation paths, in at most ~4 minutes (run it through gpu_check.sh).

For each method: its ``paper-cub`` preset with random weights (speed only, never quality), one training step at
batch 20 (after one warm-up step; the median of ``--steps`` steps) in the optimised mode (bf16 autocast with
the losses in fp32, channels_last, fused Adam) and in the baseline mode (fp32, NCHW, plain Adam) of the same
code in the same process: pass/fail, finite losses, seconds per iteration, images/s, peak memory.

Then the evaluation benchmark: ``--eval-images`` (2,000) images generated from the caption bank of the built-in
``shapes`` test split rendered at the preset's resolution (256²) and streamed into IS + FID (Inception-v3
pool3 + logits) and R-precision (the method's DAMSM encoders), exactly the evaluation loop of
``harness evaluate`` (``harness.evaluation.evaluate.generate_into`` + the metrics' ``finish``), extrapolated to 30,000
images (loop time × 15 + finish time). The extractors have random weights (no weight file is reachable from
such a machine): every figure is labelled "timing only".

``--dry-run``: the same code on the CPU at the ``test`` preset and a tiny size (seconds).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TIMING_ONLY = "timing only (random-weight extractors)"


def preflight() -> list[str]:
    """Versions of what is importable; exits with a clear line when a required package is missing."""
    lines = [f"Python {platform.python_version()} ({sys.executable})"]
    missing = []
    for name, module, required in (("pluggy", "pluggy", True), ("pyyaml", "yaml", True),  # cheap ones first
                                   ("numpy", "numpy", True), ("torch", "torch", True),
                                   ("torchvision", "torchvision", True), ("scipy", "scipy", False),
                                   ("pandas", "pandas", False), ("tqdm", "tqdm", False),
                                   ("torch-fidelity", "torch_fidelity", False), ("openai-clip", "clip", False)):
        if missing and module == "torch":
            break
        try:
            mod = __import__(module)
            lines.append(f"  {name:15s} {getattr(mod, '__version__', 'present')}")
        except Exception as e:  # noqa: BLE001 - any import failure means "absent" here
            lines.append(f"  {name:15s} absent ({type(e).__name__})")
            if required:
                missing.append(name)
    if sys.modules.get("tqdm") is None and not _importable("tqdm"):
        sys.modules["tqdm"] = _silent_tqdm_module()  # a bare GPU machine: the harness's progress bars draw nothing
    if missing:
        print("\n".join(lines))
        print(f"gpu_check: missing required package(s): {', '.join(missing)}. Without network: download the "
              f"wheels on a connected machine (pip download {' '.join(missing)} --no-deps --only-binary=:all: "
              f"--python-version 3.12 -d benchmarks/wheels) and carry benchmarks/wheels/ along; gpu_check.sh "
              f"puts every *.whl there on PYTHONPATH.", file=sys.stderr)
        sys.exit(3)
    return lines


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _silent_tqdm_module() -> Any:
    """A stand-in ``tqdm`` module for a machine without it: the subset of ``tqdm.tqdm`` the harness uses, drawing
    nothing (tqdm is a dependency of the installed harness; this script runs from a bare checkout)."""
    import types

    class tqdm:
        def __init__(self, iterable: Any = None, total: Any = None, initial: int = 0, **kwargs: Any):
            self.iterable, self.total, self.n = iterable, total, initial

        def __iter__(self):
            return iter(self.iterable if self.iterable is not None else ())

        def update(self, n: int = 1) -> None:
            self.n += n

        def set_postfix(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            return None

        def write(self, text: str, *args: Any, **kwargs: Any) -> None:
            print(text)

        def close(self) -> None:
            return None

        def __enter__(self) -> "tqdm":
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

    module = types.ModuleType("tqdm")
    module.tqdm = tqdm
    return module


@dataclass
class StepResult:
    method: str
    mode: str
    ok: bool = False
    finite: bool = False
    seconds: float = float("nan")
    images_per_s: float = float("nan")
    peak_mib: float = float("nan")
    error: str = ""
    losses: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # median seconds of text, g_forward, d_steps, g_step


@dataclass
class EvalResult:
    method: str
    ok: bool = False
    images: int = 0
    loop_s: float = float("nan")
    finish_s: float = float("nan")
    real_s: float = float("nan")
    est_30k_s: float = float("nan")
    values: dict[str, float] = field(default_factory=dict)
    error: str = ""


# ------------------------------------------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (CPU)
    except ImportError:  # pragma: no cover
        return float("nan")


def time_training(plugins, method: str, cfg, modules, device, mode: str, steps: int, vocab: int,
                  warmup: int = 1, precision: Any = None, reference_order: bool = False) -> StepResult:
    """One mode: a trainer over a copy of ``modules``, ``warmup`` untimed steps + ``steps`` timed steps.
    ``mode`` "bf16+channels_last" (autocast bf16, channels_last, fused Adam on CUDA) or anything else (fp32 NCHW,
    plain Adam) unless ``precision`` is given; ``reference_order``: the reference's op order (D weight gradients
    in the G step, the per-caption words-loss loop), as ``train_speed.py``'s baseline."""
    import contextlib

    import torch
    from harness.config import stage_sizes
    from harness.core.runtime import Precision
    from harness.train.engine import GanTrainer
    from phase_clock import PhaseClock
    from train_speed import PHASES, looped_words_loss, patched_words_loss, synthetic_batch

    res = StepResult(method, mode)
    cuda = device.type == "cuda"
    prec = precision or (Precision(device, amp=True, channels_last=True, fused_adam=cuda)
                         if mode == "bf16+channels_last" else Precision(device))
    try:
        _reset_peak(device)
        trainer = GanTrainer(plugins, cfg, copy.deepcopy(modules), device, precision=prec,
                             skip_d_weight_grads=not reference_order)
        batch = synthetic_batch(cfg.train.batch_size, cfg.data.words_num, vocab, stage_sizes(cfg)).to(device)
        batch.images = [prec.images(x) for x in batch.images]
        times, phases, finite = [], [], True
        for k in range(warmup + steps):
            noise = torch.randn(len(batch), cfg.model.z_dim, device=device)
            clock = PhaseClock(lambda: _sync(device))
            with patched_words_loss(looped_words_loss) if reference_order else contextlib.nullcontext():
                _, terms, _, g_total = trainer.train_step(batch, noise, k + 1, mark=clock.mark)
            stamps = clock.stop()
            if k >= warmup:
                times.append(stamps["total"])
                phases.append(stamps)
            values = torch.stack([*terms.values(), g_total.float()]).cpu()
            finite = finite and bool(torch.isfinite(values).all())
        res.losses = {n: float(v) for n, v in zip([*terms, "g_total"], values)}
        res.phases = {p: statistics.median(s[p] for s in phases) for p in PHASES}
        res.seconds = statistics.median(times)
        res.images_per_s = len(batch) / res.seconds
        res.peak_mib = _peak_mib(device)
        res.finite, res.ok = finite, finite
        del trainer
    except Exception as e:  # noqa: BLE001 - reported as a failed row, the check goes on
        res.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        traceback.print_exc()
    return res


def random_inception_stream(ctx, dry_run: bool):
    """A FeatureStream of a random-weight torchvision Inception-v3 (pool3 2048 + 1008 logits), shared under the
    key the IS/FID/KID metrics use, so their own code runs on it (timing only)."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from harness.evaluation.metrics.features import FeatureStream

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.fc = torch.nn.Identity()
    head = torch.nn.Linear(2048, 1008)
    # dry run: the smallest input Inception-v3 takes, and pool3 cut to 64 dimensions (FID's 2048² eigh is slow)
    size, width = (75, 64) if dry_run else (299, 2048)
    net, head = net.to(ctx.device).eval(), head.to(ctx.device).eval()

    def extract(x):
        x = F.interpolate(x.float() / 127.5 - 1.0, size=(size, size), mode="bilinear", align_corners=False)
        pool = net(x)
        return {"2048": pool[:, :width], "logits_unbiased": head(pool)}

    stream = FeatureStream(ctx, f"random Inception-v3 ({TIMING_ONLY})", extract, ["2048", "logits_unbiased"], {})
    ctx._shared["tfid"] = stream
    return stream


def time_evaluation(plugins, method: str, cfg, modules, device, images: int, root: Path, dry_run: bool,
                    vocab: int) -> EvalResult:
    """generate + IS + FID + R-precision on ``images`` images through the evaluation loop (timing only)."""
    from harness.evaluation.evaluate import build_metrics, generate_into, make_context
    from harness.evaluation.metrics.interface import EvalOptions

    res = EvalResult(method, images=images)
    try:
        dcfg = copy.deepcopy(cfg)
        dcfg.data.name = "shapes"
        dcfg.data.shapes.test_images = 4 if dry_run else 200
        dcfg.data.shapes.train_images = 4 if dry_run else 200
        dataset = plugins.dataset("shapes").build(dcfg.data, "test", train=False, seed=0, cache_root=root)
        if len(dataset.vocab) > vocab:
            raise RuntimeError(f"shapes vocabulary {len(dataset.vocab)} > the models' {vocab}")
        for m in (modules.generator, modules.text_encoder, modules.damsm.text, modules.damsm.image,
                  *modules.aux.values()):
            m.to(device).eval()
        models = SimpleNamespace(cfg=dcfg, modules=modules, vocab_size=vocab, step=0,
                                 pretrained={"damsm": root / "random-damsm"})  # untrained DAMSM: timing only
        ctx = make_context(plugins, models, dataset, EvalOptions(split="test", num_images=images), device=device,
                           root=root)
        stream = random_inception_stream(ctx, dry_run)  # IS and FID find it under their shared key
        computers, _ = build_metrics(ctx, ["is", "fid", "rp"], explicit=True, strict=True)
        _sync(device)
        t0 = time.perf_counter()
        stream.real("2048")  # real features (cached in practice: reported, not extrapolated)
        _sync(device)
        res.real_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate_into(ctx, modules, list(computers.values()), progress=False)
        _sync(device)
        res.loop_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, c in computers.items():
            for r in c.finish():
                res.values[r.metric] = r.value
        res.finish_s = time.perf_counter() - t0
        res.est_30k_s = res.loop_s * 30000 / images + res.finish_s
        res.ok = all(v == v for v in res.values.values())
    except Exception as e:  # noqa: BLE001
        res.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        traceback.print_exc()
    return res


# ------------------------------------------------------------------------------------------------------
def format_report(header: list[str], steps: list[StepResult], evals: list[EvalResult], notes: list[str]) -> str:
    out = ["# gpu_check", "", "```", *header, "```", "", "## Training step (random weights; median of the timed "
           "steps after the warm-up)", "",
           "| method | mode | pass | finite losses | s/iteration | images/s | peak memory (MiB) | fp32 / bf16 |",
           "|---|---|---|---|---:|---:|---:|---:|"]
    by = {(s.method, s.mode): s for s in steps}
    for s in steps:
        base = by.get((s.method, "fp32"))
        ratio = (f"{base.seconds / s.seconds:.2f}×" if s.mode != "fp32" and base and s.ok and base.ok else "")
        out.append(f"| {s.method} | {s.mode} | {'pass' if s.ok else 'FAIL'} | {'yes' if s.finite else 'no'} | "
                   f"{s.seconds:.3f} | {s.images_per_s:.1f} | {s.peak_mib:.0f} | {ratio} |"
                   + (f" {s.error}" if s.error else ""))
    out += ["", f"## Evaluation: generate + IS + FID + R-precision ({TIMING_ONLY})", "",
            "| method | pass | images | loop s | images/s | finish s | real features s | est. 30,000 images s |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for e in evals:
        ips = e.images / e.loop_s if e.loop_s == e.loop_s and e.loop_s > 0 else float("nan")
        out.append(f"| {e.method} | {'pass' if e.ok else 'FAIL'} | {e.images} | {e.loop_s:.2f} | {ips:.1f} | "
                   f"{e.finish_s:.2f} | {e.real_s:.2f} | {e.est_30k_s:.1f} |" + (f" {e.error}" if e.error else ""))
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, test preset, tiny sizes (checks the code path)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every installed method)")
    ap.add_argument("--batch", type=int, default=None, help="training batch (default 20; dry run 4)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per mode (default 3; dry run 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per mode (default 1; dry run 0)")
    ap.add_argument("--eval-images", type=int, default=None, help="default 2000; dry run 16")
    ap.add_argument("--budget", type=float, default=225.0, help="seconds; later work is skipped past it")
    ap.add_argument("--out", default=None, help="Markdown report (default $OUT/RESULTS.md when $OUT is set)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    header = preflight()

    import torch

    dry = args.dry_run
    if dry:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    device = torch.device("cpu" if dry or not torch.cuda.is_available() else "cuda")
    header.append(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                  f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}")
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        header.append(f"device: {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}, "
                      f"bf16 {torch.cuda.is_bf16_supported()}")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 baseline uses TF32 tensor cores
        torch.backends.cudnn.allow_tf32 = True
    else:
        header.append(f"device: CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                      f"threads){' -- dry run' if dry else ' -- no CUDA device'}")
    print("\n".join(header), flush=True)

    from harness.build import build_method
    from harness.config import build_config
    from harness.contract.plugins import build_plugins

    plugins = build_plugins()
    methods = [m.strip() for m in (args.methods or ",".join(sorted(plugins.methods()))).split(",") if m.strip()]
    preset = "test" if dry else "paper-cub"
    batch = args.batch or (4 if dry else 20)
    steps = args.steps or (1 if dry else 3)
    warmup = args.warmup if args.warmup is not None else (0 if dry else 1)
    images = args.eval_images or (8 if dry else 2000)
    vocab = 128 if dry else 5450
    notes = [f"preset {preset}, batch {batch}, random weights; vocabulary {vocab}",
             "fp32 mode: NCHW, plain Adam, TF32 matmuls allowed; bf16+channels_last: autocast bf16 (losses fp32), "
             "channels_last, fused Adam (CUDA)"]
    steps_out: list[StepResult] = []
    evals: list[EvalResult] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for method in methods:
            if time.perf_counter() - start > args.budget:
                notes.append(f"{method}: skipped (time budget {args.budget:.0f} s spent)")
                continue
            info = plugins.method(method)
            overrides = [f"train.batch_size={batch}", *(["eval.batch_size=50"] if not dry else
                                                        ["eval.batch_size=4", "eval.is_splits=2", "eval.rp_folds=2"])]
            cfg = build_config(method, info.defaults, preset=preset, dataset="cub" if not dry else "shapes",
                               overrides=overrides, section_types=info.config_sections)
            torch.manual_seed(0)
            modules = build_method(plugins, cfg, vocab)
            for mode in ("fp32", "bf16+channels_last"):
                r = time_training(plugins, method, cfg, modules, device, mode, steps, vocab, warmup)
                print(f"train {method:8s} {mode:18s} {'pass' if r.ok else 'FAIL'} {r.seconds:.3f} s/it "
                      f"{r.peak_mib:.0f} MiB {r.error}", flush=True)
                steps_out.append(r)
            if time.perf_counter() - start > args.budget:
                notes.append(f"{method}: evaluation skipped (time budget)")
                continue
            e = time_evaluation(plugins, method, cfg, modules, device, images, Path(tmp), dry, vocab)
            print(f"eval  {method:8s} {'pass' if e.ok else 'FAIL'} {images} images loop {e.loop_s:.2f} s "
                  f"finish {e.finish_s:.2f} s est. 30k {e.est_30k_s:.1f} s {e.error}", flush=True)
            evals.append(e)
            del modules
            if device.type == "cuda":
                torch.cuda.empty_cache()
    notes.append(f"total wall time {time.perf_counter() - start:.0f} s")
    report = format_report(header, steps_out, evals, notes)
    print()
    print(report)
    out = args.out or (str(Path(os.environ["OUT"]) / "RESULTS.md") if os.environ.get("OUT") else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report)
        print(f"written: {out}")
    ok = steps_out and all(s.ok for s in steps_out) and all(e.ok for e in evals)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
