"""The `caegan_encoder` pretraining stage on tiny shapes data with untrained DAMSM encoders: what it writes,
that it reloads exactly, and that its result does not depend on the test split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.data.shapes import ShapesDataset
from harness.nn.damsm import build_damsm
from harness.contract.plugins import build_plugins
from harness.build import prepare_config
from harness.contract.types import PretrainContext
from plugins.caegan.encoder_pretraining import ENCODER_FILE, SUMMARY_FILE, load_encoder, train_encoder


@pytest.fixture(scope="module")
def setup():
    plugins = build_plugins()
    cfg = prepare_config(plugins, "caegan", dataset="shapes", data_dir=None, preset="test",
                         overrides=["pretrain.caegan_encoder.max_steps=3"], seed=0)
    train_set = ShapesDataset(cfg.data, "train", train=True, seed=0)
    test_set = ShapesDataset(cfg.data, "test", train=False, seed=0)
    torch.manual_seed(0)
    damsm = build_damsm(cfg, len(train_set.vocab))
    for m in (damsm.text, damsm.image):
        m.eval().requires_grad_(False)
    return cfg, train_set, test_set, damsm


def _run(setup, out: Path, with_test: bool) -> dict:
    cfg, train_set, test_set, damsm = setup
    out.mkdir()
    torch.manual_seed(0)
    train_encoder(PretrainContext(cfg=cfg, train_set=train_set, test_set=test_set if with_test else None,
                                  damsm=damsm, pretrained={}, out_dir=out, device=torch.device("cpu")))
    return torch.load(out / ENCODER_FILE, weights_only=True)


def test_stage_writes_encoder_bank_and_summary(setup, tmp_path):
    cfg = setup[0]
    state = _run(setup, tmp_path / "a", with_test=True)
    summary = json.loads((tmp_path / "a" / SUMMARY_FILE).read_text())
    assert summary["steps"] == 3
    assert 0 < summary["bank_entries"] == int(state["bank.count"]) <= cfg.model.bank_entries
    assert {"test_top1_fc", "test_top1_sent", "test_cos_fc", "test_cos_sent"} <= set(summary)
    enc = load_encoder(cfg, tmp_path / "a")
    assert all(torch.equal(v, state[k]) for k, v in enc.state_dict().items())
    keys = state["bank.keys"][: summary["bank_entries"]]
    assert torch.allclose(keys.norm(dim=1), torch.ones(len(keys)), atol=1e-5)


def test_result_does_not_depend_on_test_split(setup, tmp_path):
    with_test = _run(setup, tmp_path / "with", with_test=True)
    without = _run(setup, tmp_path / "without", with_test=False)
    assert with_test.keys() == without.keys()
    assert all(torch.equal(with_test[k], without[k]) for k in with_test)
