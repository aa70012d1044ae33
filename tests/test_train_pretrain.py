"""The DAMSM pretraining stage: cache, info, Inception refusal, import of released encoders, method stages."""
from __future__ import annotations

import json

import pytest
import torch

from harness.util.errors import HarnessError, MissingWeightsError
from harness.contract.plugins import build_plugins, hookimpl
from harness.build import prepare_config
from harness.nn.damsm import damsm_info, load_damsm
from harness.train import pretrain
from harness.contract.types import PretrainStage

from core_tiny_method import TinyMethod


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models on one intra-op thread


class StagedMethod(TinyMethod):
    """The tiny method with a pretraining stage of its own (like CAE-GAN's encoder)."""

    calls = 0

    @hookimpl
    def harness_pretrain_stages(self, cfg):
        def train(ctx):
            StagedMethod.calls += 1
            assert ctx.damsm is not None and not ctx.damsm.text.training  # frozen DAMSM handed over
            assert "damsm" in ctx.pretrained
            (ctx.out_dir / "encoder.pth").write_bytes(b"x")

        return [PretrainStage(name="tiny_encoder", key={"width": 3}, train=train)]


@pytest.fixture
def env(tmp_path, results_root):
    plugins = build_plugins(extra=[StagedMethod(tmp_path / "tiny")])
    cfg = prepare_config(plugins, "tinygan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    info = plugins.dataset("shapes")
    train_set = info.build(cfg.data, "train", train=True, seed=0, cache_root=results_root)
    test_set = info.build(cfg.data, "test", train=False, seed=0, cache_root=results_root)
    return plugins, cfg, train_set, test_set, results_root


def test_the_inception_weight_file_is_registered():
    w = build_plugins().weight_files()[pretrain.INCEPTION_WEIGHT]
    assert w.filenames == ["inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth"]
    assert w.check == "sha256-prefix"


def test_damsm_and_method_stages_are_trained_once_then_cached(env, capsys):
    plugins, cfg, train_set, test_set, root = env
    StagedMethod.calls = 0
    first = pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")
    assert list(first) == ["damsm", "tiny_encoder"]
    info = damsm_info(first["damsm"])
    assert info["source"] == "trained here" and info["steps"] == cfg.pretrain.damsm.max_steps
    assert info["inception"] is None and info["vocab_size"] == len(train_set.vocab)
    assert all(v == v for v in info["final_loss"].values())
    again = pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")
    assert again == first and StagedMethod.calls == 1
    assert "cached" in capsys.readouterr().out
    cfg.pretrain.damsm.lr = 0.001  # another DAMSM config is another entry
    other = pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")
    assert other["damsm"] != first["damsm"] and other["tiny_encoder"] != first["tiny_encoder"]

    from harness.nn.damsm import build_damsm

    damsm = build_damsm(cfg, len(train_set.vocab))
    load_damsm(damsm, first["damsm"])  # strict load of what the stage wrote
    saved = torch.load(first["damsm"] / "text_encoder.pth", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in damsm.text.state_dict().items())


def test_inception_v3_refuses_to_start_without_the_file(env):
    plugins, cfg, train_set, test_set, root = env
    cfg.pretrain.damsm.image_encoder = "inception_v3"
    with pytest.raises(MissingWeightsError) as err:
        pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")
    msg = str(err.value)
    assert "inception_v3_google-0cc3c7bd.pth" in msg and "\n" not in msg
    assert not (root / ".cache" / "damsm").exists() or not any(
        d.is_dir() for d in (root / ".cache" / "damsm").iterdir())


def test_a_wrong_inception_file_is_named(env, isolated_paths):
    plugins, cfg, train_set, test_set, root = env
    cfg.pretrain.damsm.image_encoder = "inception_v3"
    (isolated_paths["weights"] / "inception_v3_google-0cc3c7bd.pth").write_bytes(b"not the weights")
    with pytest.raises(MissingWeightsError, match="fails its sha256 check"):
        pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")


def test_released_encoders_are_imported_by_sha256(env, tmp_path):
    plugins, cfg, train_set, test_set, root = env
    from harness.nn.damsm import build_damsm

    released = build_damsm(cfg, len(train_set.vocab))
    text_file, image_file = tmp_path / "text_encoder200.pth", tmp_path / "image_encoder200.pth"
    torch.save(released.text.state_dict(), text_file)
    torch.save(released.image.state_dict(), image_file)
    path = pretrain.import_damsm(cfg, text_file, image_file, root)
    info = json.loads((path / "info.json").read_text())
    assert info["source"] == "imported" and info["files"]["text"]["name"] == "text_encoder200.pth"
    assert pretrain.import_damsm(cfg, text_file, image_file, root) == path
    cfg.pretrain.damsm.text_encoder_file, cfg.pretrain.damsm.image_encoder_file = str(text_file), str(image_file)
    assert pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")["damsm"] == path
    fresh = build_damsm(cfg, len(train_set.vocab))
    load_damsm(fresh, path)
    for k, v in released.image.state_dict().items():
        assert torch.equal(v, fresh.image.state_dict()[k])
    cfg.pretrain.damsm.image_encoder_file = None
    with pytest.raises(HarnessError, match="needs both"):
        pretrain.ensure_pretrained(plugins, cfg, root, train_set, test_set, "cpu")


def test_import_refuses_a_pickled_object(env, tmp_path):
    _, cfg, _, _, root = env
    bad = tmp_path / "text_encoder200.pth"
    torch.save(torch.nn.Linear(2, 2), bad)  # a whole module: needs code to unpickle
    with pytest.raises(HarnessError, match="weights_only"):
        pretrain.import_damsm(cfg, bad, bad, root)


def test_learning_rate_schedule_matches_the_reference(env):
    _, cfg, *_ = env
    lr, seen = cfg.pretrain.damsm.lr, []
    for _ in range(200):
        seen.append(lr)
        lr = pretrain.next_damsm_lr(lr, cfg)
    base = cfg.pretrain.damsm.lr
    assert seen[1] == pytest.approx(base * 0.98)
    assert min(seen) >= base / 10 * 0.98 and seen[-1] == seen[-2]  # floor at lr/10 (one decay below at most)
