"""Registers the built-in data sets (cub, coco, shapes) through ``harness_datasets``, like a third-party plugin."""
from __future__ import annotations

from harness.data.coco import COCO, build_coco
from harness.data.cub import CUB, build_cub
from harness.data.shapes import build_shapes
from harness.contract.plugins import hookimpl
from harness.contract.types import DatasetInfo


@hookimpl
def harness_datasets() -> list[DatasetInfo]:
    return [
        DatasetInfo("cub", "CUB-200-2011 birds, AttnGAN layout (bbox crop, 10 captions per image)", build_cub,
                    layout=CUB.layout),
        DatasetInfo("coco", "COCO-2014, AttnGAN layout (5 captions per image, every image its own class)",
                    build_coco, layout=COCO.layout),
        DatasetInfo("shapes", "built-in synthetic scenes with compositional captions (no files needed)",
                    build_shapes, layout="(generated from data.shapes.*; no files)", needs_data_dir=False),
    ]
