"""Data-loading throughput: images/s for cub-layout loading at 256² (bbox crop, resize 304, random crop, flip,
64/128/256 stages) per DataLoader worker count, and for the built-in shapes data set.

The cub fixture is written with the shapes writer in the CUB layout at CUB-like image sizes (scene 376²
pasted into a 501×376 canvas; real CUB images are about 500×375), so decoding and cropping cost what they
cost on the real data.

    python -m benchmarks.data_loading [--images 160] [--workers 0,1,2] [--batch 20]   (from the repository root)

For comparison, the reference training step consumes (REFERENCE.md A6, CPU, 2 threads, batch 8):
AttnGAN 8 images per ~25.7 s (0.31 images/s), DM-GAN 8 per ~39.8 s (0.20 images/s). On a GPU a step is
~100× faster, i.e. tens of images/s, still below one worker's throughput below.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from harness.config import DataConfig
from harness.data.cub import build_cub
from harness.data.shapes import build_shapes
from harness.data.writer import write_dataset
from harness.contract.plugins import build_plugins

REFERENCE_IMAGES_PER_S = {"AttnGAN (CPU, A6)": 8 / 25.7, "DM-GAN (CPU, A6)": 8 / 39.8}


def throughput(ds, batch: int, workers: int, epochs: int = 1) -> list[float]:
    """images/s of each epoch through a DataLoader with the data set's collate."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=ds.collate,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    out = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        t0, n = time.perf_counter(), 0
        for b in loader:
            n += len(b)
        out.append(n / (time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_dataset(build_plugins(), "shapes", Path(tmp) / "cub", layout="cub",
                                 overrides=[f"data.shapes.train_images={args.images}", "data.shapes.test_images=4"],
                                 image_size=376)
        cfg = DataConfig(name="cub", data_dir=str(data_dir))
        print(f"cub layout, {args.images} images 501×376 JPEG, stages 64/128/256, batch {args.batch}")
        for w in workers:
            ds = build_cub(cfg, "train", train=True)
            first, second = throughput(ds, args.batch, w, epochs=2)
            print(f"  workers {w}: epoch 0 {first:7.1f}, epoch 1 {second:7.1f} images/s "
                  f"(decode + crop every epoch, as the reference; epoch 0 includes worker start-up)")
        cfg.cache_images = True
        ds = build_cub(cfg, "train", train=True)
        first, second = throughput(ds, args.batch, 0, epochs=2)
        print(f"  workers 0, data.cache_images=true: epoch 0 {first:7.1f}, epoch 1 {second:7.1f} images/s")
    scfg = DataConfig()
    scfg.shapes.train_images = args.images
    print(f"shapes, {args.images} images, stages 64/128/256, batch {args.batch}")
    for w in workers:
        ds = build_shapes(scfg, "train", train=True)
        first, second = throughput(ds, args.batch, w, epochs=2)
        print(f"  workers {w}: epoch 0 {first:7.1f} images/s (render), epoch 1 {second:7.1f} images/s (cached)")
    for name, ips in REFERENCE_IMAGES_PER_S.items():
        print(f"reference training step consumes: {name} {ips:.2f} images/s")


if __name__ == "__main__":
    main()
