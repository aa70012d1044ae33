"""A tiny fake method (a flat-colour generator) and a finished run of it, for the evaluation tests; the run is
the conftest fixture ``setup``."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harness.config import Config
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import GenOutput, MethodInfo
from harness.core.rundir import RunDir

DEFAULTS = """
test:
  data: {branch_num: 2}
  model: {embedding_dim: 32, z_dim: 8}
  eval: {num_images: 40, batch_size: 16, probe_steps: 40, rp_folds: 4, is_splits: 2, kid_subset_size: 10}
  deviations: {model.embedding_dim: "wider than shapes/test", eval: "sized for these evaluation tests"}
"""


class ColourGenerator(nn.Module):
    """sentence feature → a flat-coloured image per stage (enough to exercise every metric)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.sizes = [cfg.data.base_size * 2 ** i for i in range(cfg.data.branch_num)]
        self.proj = nn.Linear(cfg.model.embedding_dim + cfg.model.z_dim, 3)

    def forward(self, noise, text):
        c = torch.tanh(self.proj(torch.cat([text.sent, noise], 1)))[:, :, None, None]
        images = [c.expand(-1, -1, s, s).contiguous() for s in self.sizes]
        return GenOutput(images, text.sent[:, :2], text.sent[:, :2], [])


class FakeMethod:
    def __init__(self, defaults: Path):
        self.defaults = defaults

    @hookimpl
    def harness_methods(self):
        return [MethodInfo("fakegan", "test method", self.defaults)]

    @hookimpl
    def harness_generator(self, cfg, aux):
        return ColourGenerator(cfg)

    @hookimpl
    def harness_discriminators(self, cfg):
        return nn.ModuleList([nn.Identity()])


def make_fake_run(tmp: Path) -> tuple:
    """A run of the fake method under ``tmp``: config, a DAMSM "stage" directory, an EMA checkpoint; returns
    (plugins, run, results root)."""
    from harness.nn.damsm import build_damsm
    from harness.build import prepare_config
    from harness.core.checkpoint import save_checkpoint, write_pretrained

    torch.manual_seed(0)
    (tmp / "defaults.yaml").write_text(DEFAULTS)
    plugins = build_plugins([FakeMethod(tmp / "defaults.yaml")], entry_points=False)
    cfg = prepare_config(plugins, "fakegan", dataset="shapes", data_dir=None, preset="test", seed=0,
                         overrides=["data.shapes.train_images=120", "data.shapes.test_images=24"])
    root = tmp / "results"
    run = RunDir.create(root, name="fakegan-s0")
    run.save_config(cfg)
    test_set = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    vocab = len(test_set.vocab)
    damsm = build_damsm(cfg, vocab)
    damsm_dir = tmp / "damsm"
    damsm_dir.mkdir()
    torch.save(damsm.text.state_dict(), damsm_dir / "text_encoder.pth")
    torch.save(damsm.image.state_dict(), damsm_dir / "image_encoder.pth")
    write_pretrained(run, {"damsm": damsm_dir}, vocab)
    save_checkpoint(run, {"generator_ema": ColourGenerator(cfg).state_dict(), "vocab_size": vocab}, 5)
    return plugins, run, root


def random_inception(tmp_path, monkeypatch) -> Path:
    """torch-fidelity's Inception with random weights saved to a file the metrics find (75² input: fast); only
    to exercise the plumbing. Returns the file."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    import harness.evaluation.metrics.inception as inc

    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)  # the smallest it takes: fast
    path = tmp_path / "random-inception.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setattr(inc, "find_weight", lambda plugins, name: path)
    return path
