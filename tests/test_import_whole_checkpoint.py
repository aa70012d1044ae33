"""``harness_read_reference_checkpoint`` on the core's tiny test method: an original checkpoint holding generator,
discriminators and epoch together is imported strictly into a run that resumes at the next epoch; without
discriminators in it, the run is for evaluation (epoch 0, no discriminators)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core_tiny_method import TinyMethod, build_generator
from harness.cli import main
from harness.config import stage_sizes
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import ReferenceCheckpoint
from harness.core.checkpoint import load_checkpoint
from harness.core.rundir import RunDir
from harness.nn.damsm import RNNTextEncoder, SmallCNNImageEncoder


class WholeFileMethod(TinyMethod):
    """The tiny method whose "original" saves ``{'nets': {'G': ..., 'D': ... or absent}, 'epoch': N}``."""

    @hookimpl
    def harness_read_reference_checkpoint(self, cfg, checkpoint):
        nets = checkpoint["nets"]
        return ReferenceCheckpoint(generator=nets["G"], discriminators=nets.get("D"), epoch=checkpoint["epoch"])


@pytest.mark.parametrize("with_d", [True, False], ids=["with-discriminators", "generator-only"])
def test_whole_checkpoint_imports_strictly_and_resumes_at_the_next_epoch(tmp_path, results_root, capsys, with_d):
    plugins = build_plugins(extra=[WholeFileMethod(tmp_path / "m")])
    from harness.build import prepare_config
    from harness.train.engine import _build_datasets

    cfg = prepare_config(plugins, "tinygan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    torch.manual_seed(3)
    g = build_generator(cfg)
    discs = plugins.method_hooks("tinygan").harness_discriminators(cfg=cfg)
    assert len(discs) == len(stage_sizes(cfg))
    nets = {"G": g.state_dict(), **({"D": discs.state_dict()} if with_d else {})}
    torch.save({"nets": nets, "epoch": 4}, tmp_path / "original.pth")
    vocab = len(_build_datasets(plugins, cfg, results_root)[0].vocab)
    torch.save(RNNTextEncoder(vocab, cfg.pretrain.damsm.word_embedding_dim, cfg.model.embedding_dim).state_dict(),
               tmp_path / "text.pth")
    torch.save(SmallCNNImageEncoder(cfg.model.embedding_dim, 32).state_dict(), tmp_path / "image.pth")
    argv = ["import-checkpoint", "tinygan", str(tmp_path / "original.pth"), "--text-encoder",
            str(tmp_path / "text.pth"), "--image-encoder", str(tmp_path / "image.pth"), "--dataset", "shapes",
            "--preset", "test"]
    assert main(argv, plugins=plugins) == 0
    run = RunDir(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    (path,) = sorted((run.path / "checkpoints").glob("*.pt"))
    state = load_checkpoint(path)
    assert all(torch.equal(state["generator"][k], v) for k, v in g.state_dict().items())
    if with_d:
        assert state["epoch"] == 5
        assert all(torch.equal(state["discriminators"][k], v) for k, v in discs.state_dict().items())
    else:
        assert state["epoch"] == 0 and "discriminators" not in state


@pytest.mark.parametrize("answer, shown", [
    ({"G": {}}, "dict"),
    (ReferenceCheckpoint(generator=[1, 2]), "ReferenceCheckpoint"),
    (ReferenceCheckpoint(generator={}, discriminators=[]), "ReferenceCheckpoint"),
    (ReferenceCheckpoint(generator={}, epoch="4"), "ReferenceCheckpoint"),
], ids=["a-dict", "generator-not-a-dict", "discriminators-not-a-dict", "epoch-not-an-int"])
def test_a_wrong_reference_checkpoint_answer_is_one_line_naming_method_and_hook(tmp_path, answer, shown):
    from harness.build import prepare_config
    from harness.util.errors import PluginError

    class Wrong(TinyMethod):
        @hookimpl
        def harness_read_reference_checkpoint(self, cfg, checkpoint):
            return answer

    plugins = build_plugins(extra=[Wrong(tmp_path / "m")], entry_points=False)
    cfg = prepare_config(plugins, "tinygan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    with pytest.raises(PluginError) as e:
        plugins.method_hooks("tinygan").harness_read_reference_checkpoint(cfg=cfg, checkpoint={})
    assert str(e.value).startswith(f"method 'tinygan': harness_read_reference_checkpoint answered {shown}, expected "
                                   "a ReferenceCheckpoint") and "\n" not in str(e.value)
    good = ReferenceCheckpoint(generator={}, discriminators={}, epoch=4)
    Wrong.harness_read_reference_checkpoint = hookimpl(lambda self, cfg, checkpoint: good)
    plugins = build_plugins(extra=[Wrong(tmp_path / "n")], entry_points=False)
    assert plugins.method_hooks("tinygan").harness_read_reference_checkpoint(cfg=cfg, checkpoint={}) is good
