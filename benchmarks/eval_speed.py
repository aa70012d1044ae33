"""Evaluation throughput: images/s of generation alone, and of generation + every metric's per-batch work (one
pass, as ``harness evaluate`` runs it), plus the one-time set-up and the final computation of each metric.

    python -m benchmarks.eval_speed --method attngan [--preset smoke] [--dataset shapes] [--num-images 200]
                                    [--metrics auto|rp,fid,...] [--timing-only] [--device cpu|cuda]
                                    [--threads 2] [--set k=v]... [--json OUT]
    python -m benchmarks.eval_speed --run RUN [...]             (a trained run: its EMA generator and DAMSM)

Without ``--run`` the method is built from its preset with fresh (untrained) weights: the speed of a network does
not depend on its weights. ``--timing-only`` also gives every feature extractor whose weight file is missing
randomly initialised weights (torch-fidelity Inception, torchvision Inception, CLIP ViT-B/32 at its real size)
and an untrained DAMSM, so every metric runs; the numbers such a run prints are meaningless and the output
says "timing only". Without it, metrics whose weights are missing are skipped and listed.

Method: the caption bank, the metrics' set-up (extractor loading, probe training — cached after the first run —
and sentence embeddings of every test caption) is timed once; then the generation loop runs once with no metric
(generation only) and once with every metric, each timed with ``time.perf_counter`` (CUDA synchronised per
batch when on a GPU); each metric's per-batch time is measured around its ``update`` (the first metric of a
shared extractor pays for its forward pass); finally each metric's ``finish`` (real-image features for FID/KID
on the first run, then the statistics) is timed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evaluation.evaluate import build_metrics, generate_into, make_context, select_metrics  # noqa: E402
from harness.evaluation.metrics.interface import EvalOptions  # noqa: E402
from harness.contract.plugins import build_plugins  # noqa: E402


class TimedMetric:
    """Wraps a streaming metric and accumulates the time of its ``update`` calls."""

    def __init__(self, name: str, inner: Any, device: torch.device):
        self.name, self.inner, self.device, self.seconds = name, inner, device, 0.0

    def update(self, batch: Any) -> None:
        t = time.perf_counter()
        self.inner.update(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t


def _random_weight_files(out: Path) -> dict[str, Path]:
    """Randomly initialised weight files for the extractors (timing only)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe
    from torchvision.models import inception_v3

    from harness.evaluation.metrics.clip_score import import_clip

    files = {}
    keep_load, keep_url = fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, *a, **k: None  # type: ignore[assignment]
    fe.load_state_dict_from_url = lambda *a, **k: None
    try:
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url = keep_load, keep_url
    files["inception_tf_fid"] = out / "random-tfid-inception.pth"
    torch.save(net.state_dict(), files["inception_tf_fid"])
    files["damsm_inception_v3"] = out / "random-torchvision-inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               files["damsm_inception_v3"])
    clip = import_clip()
    vit_b32 = clip.model.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                              vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
                              transformer_heads=8, transformer_layers=12)
    files["clip_vit_b32"] = out / "random-clip-vit-b-32.pt"
    torch.save(vit_b32.state_dict(), files["clip_vit_b32"])
    return files


def _use_random_weights(files: dict[str, Path]) -> None:
    import harness.evaluation.metrics.clip_score as clip_score
    import harness.evaluation.metrics.inception as inception
    from harness.core.weights import find_weight

    def find(plugins: Any, name: str) -> Path:
        try:
            return find_weight(plugins, name)
        except Exception:
            return files[name]

    inception.find_weight = find  # type: ignore[assignment]
    clip_score.find_weight = find  # type: ignore[assignment]


def _models(plugins: Any, args: argparse.Namespace, root: Path, device: torch.device) -> tuple[Any, Any]:
    """(inference models, test split): a trained run's, or the preset's fresh networks."""
    from harness.build import build_method, build_split
    from harness.build import prepare_config
    from harness.build import InferenceModels, load_inference_models

    if args.run:
        from harness.core.rundir import resolve_run, results_root

        run = resolve_run(args.run, results_root(None))
        models = load_inference_models(plugins, run, device=device)
        cfg = models.cfg
    else:
        cfg = prepare_config(plugins, args.method, dataset=args.dataset, data_dir=args.data_dir,
                             preset=args.preset, overrides=args.overrides, seed=0)
        models = None
    dataset = build_split(plugins, cfg, cfg.eval.split, train=False, cache_root=root)
    if models is None:
        modules = build_method(plugins, cfg, len(dataset.vocab))
        for m in (modules.damsm.text, modules.damsm.image, modules.text_encoder, modules.generator):
            m.to(device).eval().requires_grad_(False)
        pretrained = {"damsm": root / "untrained-damsm"} if args.timing_only else {}
        models = InferenceModels(cfg, modules, len(dataset.vocab), 0, pretrained)
    return models, dataset


def measure(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    plugins = build_plugins()
    tmp = Path(tempfile.mkdtemp(prefix="eval-speed-"))
    if args.timing_only:
        _use_random_weights(_random_weight_files(tmp))
    root = Path(args.results_dir) if args.results_dir else tmp
    models, dataset = _models(plugins, args, root, device)
    cfg = models.cfg
    names, explicit = select_metrics(plugins, None if args.metrics == "auto" else args.metrics, cfg.data.name)

    t0 = time.perf_counter()
    ctx = make_context(plugins, models, dataset, EvalOptions(split=cfg.eval.split, num_images=args.num_images),
                       device=device, root=root)
    computers, skipped = build_metrics(ctx, names, explicit=False, strict=False)
    setup_s = time.perf_counter() - t0

    gen_rate = generate_into(ctx, models.modules, [], progress=False)
    timed = [TimedMetric(n, c, device) for n, c in computers.items()]
    t0 = time.perf_counter()
    generate_into(ctx, models.modules, timed, progress=False)
    loop_s = time.perf_counter() - t0
    finish = {}
    for t in timed:
        s = time.perf_counter()
        t.inner.finish()
        finish[t.name] = time.perf_counter() - s
    n = args.num_images
    total = loop_s + sum(finish.values())
    return {
        "label": "timing only (random extractor weights, untrained networks)" if args.timing_only else
                 ("trained run " + str(args.run) if args.run else "untrained networks, real extractor weights"),
        "method": cfg.method, "dataset": cfg.data.name, "preset": cfg.preset, "resolution": dataset.stage_sizes[-1],
        "device": str(device), "threads": args.threads, "num_images": n, "batch_size": cfg.eval.batch_size,
        "metrics": list(computers), "skipped": [m for m, _ in skipped],
        "setup_s": round(setup_s, 3),
        "generate_only_img_s": round(gen_rate, 2),
        "generate_and_metrics_img_s": round(n / loop_s, 2),
        "end_to_end_img_s": round(n / total, 2),
        "per_metric_update_s": {t.name: round(t.seconds, 3) for t in timed},
        "per_metric_finish_s": {k: round(v, 3) for k, v in finish.items()},
        "torch": torch.__version__,
    }


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=None)
    p.add_argument("--method", default="attngan")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--metrics", default="auto")
    p.add_argument("--timing-only", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-dir", default=None, help="cache root (default: a fresh temporary directory)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    res = measure(args)
    print(f"evaluation throughput [{res['label']}]: {res['method']} on {res['dataset']} ({res['preset']}, "
          f"{res['resolution']}²), {res['num_images']} images, batch {res['batch_size']}, {res['device']}, "
          f"{res['threads']} threads")
    print(f"  set-up (caption bank, extractors, probe, sentence embeddings): {res['setup_s']:.2f} s")
    print(f"  generation only:              {res['generate_only_img_s']:8.1f} images/s")
    print(f"  generation + every metric:    {res['generate_and_metrics_img_s']:8.1f} images/s  "
          f"({', '.join(res['metrics'])})")
    print(f"  incl. each metric's finish:   {res['end_to_end_img_s']:8.1f} images/s")
    for m in res["metrics"]:
        upd, fin = res["per_metric_update_s"][m], res["per_metric_finish_s"][m]
        print(f"    {m:11s} update {upd:7.2f} s   finish {fin:7.2f} s")
    if res["skipped"]:
        print(f"  skipped (weights missing): {', '.join(res['skipped'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
