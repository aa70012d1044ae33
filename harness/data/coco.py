"""``coco``: COCO-2014 in the AttnGAN layout (DM-GAN merges train2014 and val2014 into ``images/``).

No bounding boxes, no class_info (every image is its own class), 5 captions per image.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from harness.data.attngan_layout import AttnGanDataset, LayoutSpec, build_layout_dataset

if TYPE_CHECKING:  # type hints only
    from harness.config import DataConfig

COCO = LayoutSpec(
    name="coco",
    image_root="images",
    has_bbox=False,
    has_class_info=False,
    captions_per_image=5,
    layout="DIR/images/<key>.jpg, DIR/{train,test}/filenames.pickle, DIR/text/<key>.txt (5 captions; "
           "or DIR/text/text/), optional DIR/captions.pickle (AttnGAN coco.zip + train2014/val2014 images)",
)


def build_coco(cfg: DataConfig, split: str, *, train: bool, seed: int = 0,
               cache_root: Optional[Path] = None) -> AttnGanDataset:
    """One split of COCO (``cfg``: DataConfig)."""
    return build_layout_dataset(COCO, cfg, split, train=train, seed=seed, cache_root=cache_root)
