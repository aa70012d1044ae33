"""The shapes probe learns the attributes of real shapes images (tiny), and its IS/FID plumbing."""
import numpy as np
import pytest
import torch

from harness.config import Config
from harness.data.shapes import build_shapes
from harness.evaluation.metrics.shapes_probe import ShapesProbe, train_probe


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These small CPU networks run on one intra-op thread (conftest ``one_thread``)."""


@pytest.fixture(scope="module")
def splits():
    cfg = Config().data
    cfg.base_size, cfg.branch_num = 16, 2
    cfg.shapes.train_images, cfg.shapes.test_images = 300, 80
    return build_shapes(cfg, "train", train=False), build_shapes(cfg, "test", train=False)


def test_probe_learns_real_shapes(splits):
    train, test = splits
    probe, acc = train_probe(train, test, steps=120, seed=0)
    chance = {k: 100 / len(v) for k, v in train.attribute_names().items()}
    assert acc["colour"] >= 3 * chance["colour"], acc
    assert acc["background"] >= 2 * chance["background"], acc
    assert acc["position"] >= 2 * chance["position"], acc
    assert np.mean(list(acc.values())) > 2 * np.mean(list(chance.values()))
    # same seed → same probe
    assert train_probe(train, test, steps=3, seed=1)[1] == train_probe(train, test, steps=3, seed=1)[1]


def test_probe_shapes_and_sizes():
    probe = ShapesProbe({"colour": 8, "shape": 6})
    for size in (16, 32, 64):
        f, logits = probe(torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8))
        assert f.shape == (3, 128) and logits["colour"].shape == (3, 8) and logits["shape"].shape == (3, 6)
