"""import-checkpoint dfgan: a state_epoch_N.pth in the original's layout (``{'model': {'netG', 'netD', 'netC'},
'optimizers', 'epoch'}``, keys of the original's modules, with and without ``module.`` prefixes), built here from
this plugin's modules under the original's key names, imports strictly: G and D exactly, the epoch after N to resume
from; other layouts and mismatched keys are refused in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.config import build_config
from harness.contract.plugins import build_plugins
from harness.core.checkpoint import load_checkpoint
from harness.core.rundir import RunDir
from harness.nn.damsm import RNNTextEncoder, SmallCNNImageEncoder
from harness.util.errors import HarnessError
from plugins.dfgan.checkpoint import read_state_epoch
from plugins.dfgan.model import DFGANDiscriminator, DFGANGenerator

PLUGINS = build_plugins()


def _original_file(cfg, path: Path, *, ddp: bool) -> tuple[dict, dict]:
    """A state_epoch_N.pth as the original's save_models writes it; returns (netG state, {netD, netC} states)."""
    torch.manual_seed(0)
    g = DFGANGenerator(cfg.model.gf_dim, cfg.model.z_dim, cfg.model.embedding_dim, cfg.data.image_size)
    d = DFGANDiscriminator(cfg.model.df_dim, cfg.model.embedding_dim, cfg.data.image_size)
    for p in (*g.parameters(), *d.parameters()):
        p.data.normal_()  # not the initialisation: every tensor must arrive where it belongs
    prefix = "module." if ddp else ""
    nets = {"netG": g.state_dict(), "netD": d.netD.state_dict(), "netC": d.netC.state_dict()}
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
    torch.save({"model": {k: {prefix + n: t for n, t in sd.items()} for k, sd in nets.items()},
                "optimizers": {"optimizer_G": opt_g.state_dict(), "optimizer_D": opt_d.state_dict()},
                "epoch": 2}, path)
    return nets["netG"], {"netD": nets["netD"], "netC": nets["netC"]}


def _test_cfg():
    info = PLUGINS.method("dfgan")
    return build_config("dfgan", info.defaults, preset="test", dataset="shapes", section_types=info.config_sections)


def _import_argv(tmp_path: Path, cfg, results_root: Path, file: Path) -> list[str]:
    """``harness import-checkpoint dfgan FILE`` with DAMSM encoder files of the data set's vocabulary."""
    from harness.train.engine import _build_datasets

    vocab = len(_build_datasets(PLUGINS, cfg, results_root)[0].vocab)
    torch.save(RNNTextEncoder(vocab, cfg.pretrain.damsm.word_embedding_dim, cfg.model.embedding_dim).state_dict(),
               tmp_path / "text.pth")
    torch.save(SmallCNNImageEncoder(cfg.model.embedding_dim, 32).state_dict(), tmp_path / "image.pth")
    return ["import-checkpoint", "dfgan", str(file), "--text-encoder", str(tmp_path / "text.pth"),
            "--image-encoder", str(tmp_path / "image.pth"), "--dataset", "shapes", "--preset", "test"]


@pytest.mark.parametrize("ddp", [True, False], ids=["module-prefixed", "plain"])
def test_state_epoch_file_imports_generator_discriminator_and_epoch(tmp_path, results_root, capsys, ddp):
    cfg = _test_cfg()
    g_state, d_states = _original_file(cfg, tmp_path / "state_epoch_002.pth", ddp=ddp)
    assert main(_import_argv(tmp_path, cfg, results_root, tmp_path / "state_epoch_002.pth"), plugins=PLUGINS) == 0
    out, err = capsys.readouterr()
    assert "harness train --resume starts at epoch 3" in err
    run = RunDir(Path(out.strip().splitlines()[-1]))
    (ckpt_path,) = sorted((run.path / "checkpoints").glob("*.pt"))
    state = load_checkpoint(ckpt_path)
    assert state["epoch"] == 3
    assert state["generator"].keys() == g_state.keys()
    assert all(torch.equal(state["generator"][k], v) for k, v in g_state.items())
    expected_d = {f"0.{net}.{k}": v for net, sd in d_states.items() for k, v in sd.items()}
    assert state["discriminators"].keys() == expected_d.keys()
    assert all(torch.equal(state["discriminators"][k], v) for k, v in expected_d.items())


def test_other_layouts_and_mismatched_keys_are_refused_in_one_line(tmp_path, results_root, capsys):
    with pytest.raises(HarnessError, match=r"not a DF-GAN checkpoint: expected .*found keys fc.weight"):
        read_state_epoch({"fc.weight": torch.zeros(1)})  # a bare generator state dict
    with pytest.raises(HarnessError, match=r"found 'model' keys netD, netG"):
        read_state_epoch({"model": {"netG": {}, "netD": {}}, "epoch": 1})
    with pytest.raises(HarnessError, match=r"model\['netC'\] .* not a state dict of tensors"):
        read_state_epoch({"model": {"netG": {}, "netD": {}, "netC": {"a": 1}}})
    cfg = _test_cfg()
    _original_file(cfg, tmp_path / "s.pth", ddp=False)
    for net, key in (("netG", "fc.weight"), ("netC", "joint_conv.2.weight")):
        bad = torch.load(tmp_path / "s.pth", weights_only=True)
        bad["model"][net][key] = torch.zeros(3, 3)
        torch.save(bad, tmp_path / "bad.pth")
        assert main(_import_argv(tmp_path, cfg, results_root, tmp_path / "bad.pth"), plugins=PLUGINS) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "has shape [3, 3] in the file" in err[0] and key in err[0], err


@pytest.mark.parametrize("given", [[], ["--set", "eval.truncation=0"]], ids=["original", "protocol-kept"])
def test_the_import_evaluates_with_the_originals_truncated_noise_as_a_declared_deviation(tmp_path, results_root,
                                                                                         capsys, given):
    """The original's test_FID.py draws 0.88·truncnorm(−2, 2) (bird.yml, coco.yml): the imported run's config says
    eval.truncation=0.88 as a deviation, unless the command line sets it."""
    cfg = _test_cfg()
    _original_file(cfg, tmp_path / "state_epoch_002.pth", ddp=False)
    argv = _import_argv(tmp_path, cfg, results_root, tmp_path / "state_epoch_002.pth") + given
    assert main(argv, plugins=PLUGINS) == 0
    out, err = capsys.readouterr()
    run_cfg = RunDir(Path(out.strip().splitlines()[-1])).load_config(PLUGINS)
    if given:
        assert run_cfg.eval.truncation == 0.0 and "eval.truncation" not in run_cfg.deviations
        assert "eval.truncation=0.0" in err
    else:
        assert run_cfg.eval.truncation == 0.88 and "eval.truncation" in run_cfg.deviations
        assert "eval.truncation=0.88" in err
    # DF-GAN has no word attention: its padding mask is not a deviation of the import
    assert "model.attention_mask" not in run_cfg.deviations and "attention_mask" not in err
