"""DM-GAN parity with the reference code: parameter counts (REFERENCE.md A1) and the released-weight layout
(reference_keys.txt, A5)."""
from __future__ import annotations

import contextlib
import io
import json
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from harness.config import build_config
from harness.util.errors import HarnessError
from harness.core.state_dicts import load_state_strict
from harness.contract.plugins import build_plugins
from harness.contract.types import TextFeatures
from plugins.dmgan.checkpoint import import_reference_generator_state, reference_keys
from plugins.dmgan.model import DMGANGenerator

REFERENCE_G = 21_449_042
REFERENCE_D = [1_878_242, 5_155_810, 18_264_546]  # trainable counts: SN u/v are buffers here


@pytest.fixture(scope="module")
def plugins():
    return build_plugins()


def _paper_cfg(plugins):
    info = plugins.method("dmgan")
    return build_config("dmgan", info.defaults, preset="paper", dataset="cub", section_types=info.config_sections)


def test_inspect_cli_paper_counts(plugins):
    from harness.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["inspect", "--plugins", "dmgan", "--preset", "paper", "--vocab-size", "5450", "--json"],
                  plugins=plugins)
    assert rc in (0, None)
    report = json.loads(out.getvalue())
    report = report[0] if isinstance(report, list) else report
    assert report["generator"] == REFERENCE_G
    assert report["discriminators"] == REFERENCE_D
    assert report["text_encoder"] == 2_075_320
    assert report["image_encoder"] == 22_506_720


def test_memory_and_stage_breakdown():
    """REFERENCE.md A1 children breakdown: NEXT_STAGE_G 1,092,161 (memory 58,177, residual 886,272,
    upsample 147,712), INIT_STAGE_G 19,156,736, CA 102,800, image heads 1,728."""
    with torch.device("meta"):
        g = DMGANGenerator()
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(g.ca_net) == 102_800
    assert n(g.h_net1) == 19_156_736
    for stage in (g.h_net2, g.h_net3):
        assert n(stage) == 1_092_161
        assert (n(stage.memory), n(stage.residual), n(stage.upsample)) == (58_177, 886_272, 147_712)
    assert n(g.img_net1) == n(g.img_net2) == n(g.img_net3) == 1_728


def test_reference_manifest_facts():
    keys = reference_keys()
    assert len(keys) == 119
    assert sum(k.endswith("num_batches_tracked") for k in keys) == 15
    params = sum(math.prod(s) for k, s in keys.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == REFERENCE_G


def test_mapping_covers_manifest_exactly(plugins):
    """Mapped reference keys = the generator's keys, with the same shapes, one to one."""
    cfg = _paper_cfg(plugins)
    with torch.device("meta"):
        g = DMGANGenerator.from_config(cfg)
    ours = {k: list(v.shape) for k, v in g.state_dict().items()}
    ref = reference_keys()
    mapped = plugins.method_hooks("dmgan").harness_import_generator_state(
        cfg=cfg, state_dict=OrderedDict((k, torch.empty(s, device="meta")) for k, s in ref.items()))
    assert len(mapped) == len(ref)  # no two reference keys collapse onto one
    assert {k: list(v.shape) for k, v in mapped.items()} == ours


def _reference_layout_state(g: DMGANGenerator, with_nbt: bool) -> OrderedDict:
    """Our generator's state written out in the reference G_NET layout (built from the manifest alone: each
    reference key is filled from the module attribute path it names in the reference code)."""
    ours = g.state_dict()
    out = OrderedDict()
    for key in reference_keys():
        if key.endswith("num_batches_tracked") and not with_nbt:
            continue
        parts = key.split(".")
        if parts[0].startswith("h_net") and parts[0] != "h_net1" and parts[1] in (
                "A", "B", "M_r", "M_w", "key", "value", "response_gate"):
            parts.insert(1, "memory")
        out[key] = ours[".".join(parts)].clone()
    return out


@pytest.mark.parametrize("with_nbt", [True, False])
def test_round_trip_identical_outputs(with_nbt):
    """reference-layout dict → a fresh G → identical outputs (eval mode, BN running stats carried over)."""
    torch.manual_seed(0)
    kwargs = dict(gf_dim=2, z_dim=6, condition_dim=5, embedding_dim=8, r_num=2, branch_num=3, base_size=64)
    src = DMGANGenerator(**kwargs)
    with torch.no_grad():  # non-trivial BN statistics
        for m in src.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    state = _reference_layout_state(src, with_nbt)
    dst = DMGANGenerator(**kwargs)
    load_state_strict(dst, import_reference_generator_state(state), source="test")
    src.eval(), dst.eval()
    words = torch.randn(2, 8, 5)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    text = TextFeatures(words, torch.randn(2, 8), mask, torch.tensor([5, 3]))
    noise = torch.randn(2, 6)
    torch.manual_seed(1)
    a = src(noise, text)
    torch.manual_seed(1)  # CA draws ε
    b = dst(noise, text)
    for x, y in zip(a.images + a.attn, b.images + b.attn):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    if with_nbt:
        assert int(dst.h_net2.upsample[2].num_batches_tracked) == 7


def test_mismatch_names_key_and_shapes():
    """A reference-layout file with a wrong shape fails naming the (mapped) key and both shapes."""
    torch.manual_seed(0)
    kwargs = dict(gf_dim=2, z_dim=6, condition_dim=5, embedding_dim=8, r_num=2, branch_num=3, base_size=64)
    state = _reference_layout_state(DMGANGenerator(**kwargs), True)
    state["h_net2.M_w.0.weight"] = torch.zeros(9, 8, 1)
    with pytest.raises(HarnessError, match=r"h_net2\.memory\.M_w\.0\.weight.*\[9, 8, 1\].*\[4, 8, 1\]"):
        load_state_strict(DMGANGenerator(**kwargs), import_reference_generator_state(state), source="bird_DMGAN.pth")


def test_import_checkpoint_cli_end_to_end(plugins, tmp_path, results_root):
    """`harness import-checkpoint dmgan FILE ...` on a reference-layout file (test-preset sizes): the run's EMA
    generator equals the file; a wrong shape exits with one line naming the key."""
    from harness.cli import main
    from harness.nn.damsm import build_damsm
    from harness.core.checkpoint import latest_checkpoint, load_checkpoint
    from harness.core.rundir import RunDir

    info = plugins.method("dmgan")
    cfg = build_config("dmgan", info.defaults, preset="test", dataset="shapes", section_types=info.config_sections)
    torch.manual_seed(0)
    g = DMGANGenerator.from_config(cfg)
    ref_state = OrderedDict((k.replace(".memory.", "."), v) for k, v in g.state_dict().items())
    assert "h_net2.M_w.0.weight" in ref_state
    damsm = build_damsm(cfg, vocab_size=70)  # the shapes vocabulary: import refuses an encoder of another size
    torch.save(ref_state, tmp_path / "G.pth")
    torch.save(damsm.text.state_dict(), tmp_path / "text.pth")
    torch.save(damsm.image.state_dict(), tmp_path / "image.pth")
    args = ["import-checkpoint", "dmgan", str(tmp_path / "G.pth"), "--text-encoder", str(tmp_path / "text.pth"),
            "--image-encoder", str(tmp_path / "image.pth"), "--dataset", "shapes", "--preset", "test"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args, plugins=plugins) == 0
    run = RunDir(Path(out.getvalue().strip().splitlines()[-1]))
    ckpt = load_checkpoint(latest_checkpoint(run))
    for k, v in g.state_dict().items():
        assert torch.equal(ckpt["generator_ema"][k], v), k

    ref_state["h_net2.key.0.weight"] = torch.zeros(3, 3, 1)
    torch.save(ref_state, tmp_path / "G.pth")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args, plugins=plugins) == 2
    assert "h_net2.memory.key.0.weight" in err.getvalue() and "[3, 3, 1]" in err.getvalue()
