"""CAE-GAN's generation never reads an image of the split it generates for.

Two worlds, each with its own results root (so its own DAMSM, encoder and GAN): in one the test split's images
are the real shapes renders, in the other they are noise. Everything a run does (DAMSM pretraining, the
encoder stage with its region bank, GAN training, checkpoint, EMA generator) runs in both; then both EMA
generators generate for the same test captions with the same seed. The outputs must be bit-identical, while
the noise demonstrably reached every consumer of test images (the validation figures differ).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data.shapes import ShapesDataset
from harness.contract.plugins import build_plugins
from harness.core.rundir import RunDir
from harness.build import prepare_config
from harness.build import load_inference_models
from harness.train.engine import train_method

_real_images = ShapesDataset._images


def _noise_for_test_split(self: ShapesDataset, index: int, rng: np.random.Generator) -> list[torch.Tensor]:
    images = _real_images(self, index, rng)  # same draws from the item's generator as the real world
    if self.split != "test":
        return images
    g = torch.Generator().manual_seed(1000 + index)
    return [torch.rand(im.shape, generator=g) * 2 - 1 for im in images]


def _world(root: Path, plugins) -> tuple[list[torch.Tensor], dict]:
    cfg = prepare_config(plugins, "caegan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    run = RunDir.create(root, name="caegan-s0")
    run.save_config(cfg)
    train_method(plugins, cfg, run, resume=False, root=root)
    models = load_inference_models(plugins, run)
    test_set = ShapesDataset(cfg.data, "test", train=False, seed=0)  # captions only; no image is read here
    items = []
    for i in range(6):
        rng = test_set.item_rng(i)
        caps = test_set.captions(i)
        ids = caps[int(rng.integers(0, len(caps)))][: cfg.data.words_num]
        caption = torch.zeros(cfg.data.words_num, dtype=torch.long)
        caption[: len(ids)] = torch.tensor(ids)
        items.append({"images": [], "caption": caption, "length": len(ids), "class_id": 0, "key": "", "index": i})
    batch = ShapesDataset.collate(items)
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(len(batch), cfg.model.z_dim, generator=g)
    with torch.no_grad():
        text = models.modules.text_encoder(batch.captions, batch.lengths)
        torch.manual_seed(123)  # conditioning augmentation's ε
        out = models.modules.generator(noise, text)
    summary = json.loads((models.pretrained["caegan_encoder"] / "summary.json").read_text())
    return out.images, summary


@pytest.mark.slow
def test_generation_is_identical_when_test_images_are_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plugins = build_plugins()
    real_images, real_summary = _world(tmp_path / "real", plugins)
    monkeypatch.setattr(ShapesDataset, "_images", _noise_for_test_split)
    noise_images, noise_summary = _world(tmp_path / "noise", plugins)
    assert len(real_images) == len(noise_images) == 2
    for a, b in zip(real_images, noise_images):
        assert torch.equal(a, b)
    # the substitution was effective: the encoder stage's test-split validation saw different images
    assert real_summary["test_cos_fc"] != noise_summary["test_cos_fc"]
