"""``cub``: CUB-200-2011 with the AttnGAN metadata (birds.zip), read exactly as the reference code does.

Bounding-box crop (square of 1.5 × the larger bbox side around its centre, clipped), 10 captions per image,
class ids from ``class_info.pickle``. See ``harness.data.attngan_layout`` for the layout.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from harness.data.attngan_layout import AttnGanDataset, LayoutSpec, build_layout_dataset

if TYPE_CHECKING:  # type hints only
    from harness.config import DataConfig

CUB = LayoutSpec(
    name="cub",
    image_root="CUB_200_2011/images",
    has_bbox=True,
    has_class_info=True,
    captions_per_image=10,
    layout="DIR/CUB_200_2011/{images.txt, bounding_boxes.txt, images/<class>/<name>.jpg}, "
           "DIR/{train,test}/{filenames.pickle, class_info.pickle}, DIR/text/<key>.txt (10 captions; "
           "or DIR/text/text/), optional DIR/captions.pickle (AttnGAN birds.zip + CUB_200_2011.tgz)",
)


def build_cub(cfg: DataConfig, split: str, *, train: bool, seed: int = 0,
              cache_root: Optional[Path] = None) -> AttnGanDataset:
    """One split of CUB (``cfg``: DataConfig)."""
    return build_layout_dataset(CUB, cfg, split, train=train, seed=seed, cache_root=cache_root)
