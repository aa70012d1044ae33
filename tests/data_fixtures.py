"""The built-in data sets alone and a small shapes configuration, for the data-set tests; the CUB-layout copies
written from it are the conftest fixtures ``cub_written`` and ``cub``."""
from __future__ import annotations

from pathlib import Path

import pluggy

from harness.config import DataConfig
from harness.contract import hookspecs
from harness.contract.plugins import Plugins
from harness.data import registry

SMALL = ["data.shapes.train_images=12", "data.shapes.test_images=6", "data.base_size=16"]


def data_plugins() -> Plugins:
    """Only the built-in data sets (independent of the method plugins)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(registry)
    return Plugins(pm, {})


def small_cfg(name: str, data_dir: Path | None) -> DataConfig:
    cfg = DataConfig(name=name, data_dir=str(data_dir) if data_dir else None, base_size=16)
    cfg.shapes.train_images, cfg.shapes.test_images = 12, 6
    return cfg
