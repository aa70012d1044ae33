"""The shapes probe's cache entry is keyed on what it is made of: the training split it is trained on (its
data settings and files digest) and the evaluation split its real accuracy is measured on."""
from __future__ import annotations

import json

import torch

import harness.data.validate
from harness.build import prepare_config
from harness.contract.plugins import build_plugins
from harness.evaluation.metrics.interface import EvalContext
from harness.evaluation.metrics.shapes_probe import load_probe

SIZES = {"train": 12, "test": 6}


def _context(plugins, root):
    cfg = prepare_config(plugins, "attngan", dataset="shapes", data_dir=None, preset="test", seed=0,
                         overrides=[f"data.shapes.{s}_images={n}" for s, n in SIZES.items()]
                         + ["eval.probe_steps=2"])
    test = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    return EvalContext(plugins=plugins, cfg=cfg, dataset=test, split="test", device=torch.device("cpu"), root=root,
                       bank=None, resolution=test.stage_sizes[-1], num_images=len(test), seed=0)


def test_the_probe_is_keyed_on_its_training_split_and_the_split_it_is_measured_on(tmp_path, monkeypatch):
    plugins, root = build_plugins(), tmp_path / "results"
    edition = {"train": "a", "test": "a"}  # the data as files: a digest per split (which split: by its size)
    split_of = {n: s for s, n in SIZES.items()}

    def digest(dataset, data_dir, *, strict=False, captions=True):
        split = split_of[len(dataset)]
        return {"files": f"{split}-{edition[split]}", "count": len(dataset), "strict": strict}

    monkeypatch.setattr(harness.data.validate, "source_digest", digest)
    _, info, first = load_probe(_context(plugins, root))
    key = json.loads((first / "key.json").read_text())
    assert (key["split"], key["files"]["files"]) == ("train", "train-a")
    assert (key["accuracy_on"]["split"], key["accuracy_on"]["files"]["files"]) == ("test", "test-a")
    assert info["test_split"] == "test"
    edition["train"] = "b"  # the training images changed: the probe is trained again
    second = load_probe(_context(plugins, root))[2]
    assert second != first
    edition["test"] = "b"  # the evaluation images changed: its accuracy is measured again
    assert load_probe(_context(plugins, root))[2] not in (first, second)
    edition.update(train="a", test="a")
    assert load_probe(_context(plugins, root))[2] == first
