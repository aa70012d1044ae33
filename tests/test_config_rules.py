"""Every config key of every section (plugin sections included) has a declared rule, and a value outside it fails
before any work with one line naming the key (issue 13 item 4)."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from harness.cli import main
from harness.util.errors import ConfigError
from harness.config.rules import RULE, leaf_fields
from harness.contract.plugins import build_plugins
from harness.build import prepare_config

PLUGINS = build_plugins()
METHODS = sorted(PLUGINS.methods())


def _fields() -> list[tuple[str, str, dataclasses.Field, typing.Any]]:
    out = []
    for method in METHODS:
        cfg = prepare_config(PLUGINS, method, dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
        for key, owner, f in leaf_fields(cfg):
            out.append((method, key, f, typing.get_type_hints(type(owner))[f.name]))
    return out


FIELDS = _fields()


def _is_list(tp: typing.Any) -> bool:
    if typing.get_origin(tp) is list:
        return True
    return any(typing.get_origin(a) is list for a in typing.get_args(tp))


def _bad_values(f: dataclasses.Field, tp: typing.Any) -> list[str]:
    """`--set` texts outside the field's rule (a bool or Literal field: a word that is no choice)."""
    rule = f.metadata.get(RULE)
    if rule is None:
        return ["nosuch"]
    bad = [str(b) for b in rule.bad]
    return [f"[{b}]" for b in bad] if _is_list(tp) and rule.registry is None else bad


def test_every_method_section_is_covered():
    keys = {(m, k) for m, k, _, _ in FIELDS}
    assert ("caegan", "pretrain.caegan_encoder.batch_size") in keys
    assert ("ecagan", "loss.perceptual.stages") in keys and ("ecagan", "model.carafe.k_up") in keys
    assert ("attngan", "eval.metrics") in keys and ("dmgan", "data.shapes.train_images") in keys


@pytest.mark.parametrize("method,key,f,tp", FIELDS, ids=[f"{m}:{k}" for m, k, _, _ in FIELDS])
def test_field_rule_refuses_bad_values(method: str, key: str, f: dataclasses.Field, tp: typing.Any):
    rule = f.metadata.get(RULE)
    constrained_by_type = tp is bool or typing.get_origin(tp) is typing.Literal
    assert rule is not None or constrained_by_type, f"{key} declares no rule (harness.config.rules.value)"
    bad = _bad_values(f, tp)
    if not bad:  # a free value: the rule says why any value is fine
        assert rule.allowed.startswith("any value (") and len(rule.allowed) > len("any value ()") + 10
        return
    for text in bad:
        with pytest.raises(ConfigError) as e:
            prepare_config(PLUGINS, method, dataset="shapes", data_dir=None, preset="test",
                           overrides=[f"{key}={text}"], seed=0)
        msg = str(e.value)
        assert key in msg and "\n" not in msg, msg


# the AttnGAN family: several generator stages (2 in test) and BatchNorm (a one-stage method checks its own)
STAGED = [m for m in METHODS if prepare_config(PLUGINS, m, dataset="shapes", data_dir=None, preset="test",
                                               overrides=[], seed=0).data.branch_num > 1]


@pytest.mark.parametrize("method", STAGED)
@pytest.mark.parametrize("override,words", [
    # the first stage follows from the protocol's data.image_size and the method's data.branch_num (2 in test)
    ("data.image_size=40", ["data.image_size=40", "data.base_size=20", "4·2^n", "16, 32"]),
    ("data.image_size=96", ["data.image_size=96", "data.base_size=48", "4·2^n"]),
    ("data.base_size=20", ["data.base_size=20", "data.image_size is 32"]),
    ("train.batch_size=1", ["train.batch_size=1", "BatchNorm"]),
])
def test_method_hook_constraints(method: str, override: str, words: list[str]):
    with pytest.raises(ConfigError) as e:
        prepare_config(PLUGINS, method, dataset="shapes", data_dir=None, preset="test", overrides=[override], seed=0)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_batchnorm_items_per_process(monkeypatch: pytest.MonkeyPatch):
    """Under torchrun (WORLD_SIZE) the batch is split: BatchNorm sees batch_size / N items unless sync_bn."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = dict(dataset="shapes", data_dir=None, preset="test", seed=0)
    with pytest.raises(ConfigError, match="1 per process.*sync_bn"):
        prepare_config(PLUGINS, "attngan", overrides=["train.batch_size=2"], **args)
    cfg = prepare_config(PLUGINS, "attngan", overrides=["train.batch_size=2", "train.sync_bn=true"], **args)
    assert cfg.train.batch_size == 2
    assert prepare_config(PLUGINS, "attngan", overrides=["train.batch_size=4"], **args).train.batch_size == 4


def test_core_cross_key_constraints(monkeypatch: pytest.MonkeyPatch):
    args = dict(dataset="shapes", data_dir=None, preset="test", seed=0)
    with pytest.raises(ConfigError, match="eval.num_images=5 .*eval.rp_folds=10"):
        prepare_config(PLUGINS, "dmgan", overrides=["eval.num_images=5", "eval.rp_folds=10"], **args)
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="train.batch_size=6 .* 4 processes"):
        prepare_config(PLUGINS, "dmgan", overrides=["train.batch_size=6", "train.sync_bn=true"], **args)


def test_plugin_cross_key_constraints():
    args = dict(dataset="shapes", data_dir=None, preset="test", seed=0)
    with pytest.raises(ConfigError, match="loss.perceptual.stages"):
        prepare_config(PLUGINS, "ecagan", overrides=["loss.perceptual.stages=[0,5]"], **args)
    with pytest.raises(ConfigError, match="model.encoder_heads=3"):
        prepare_config(PLUGINS, "caegan", overrides=["model.encoder_heads=3"], **args)


@pytest.mark.parametrize("verb", ["train", "run"])
@pytest.mark.parametrize("override", ["train.batch_size=0", "train.max_steps=-3", "data.base_size=20",
                                      "eval.metrics=nosuch", "train.batch_size=1"])
def test_cli_refuses_before_any_directory(verb: str, override: str, tmp_path, capsys: pytest.CaptureFixture):
    root = tmp_path / "results"  # not there yet: a refused config makes no directory at all
    rc = main([verb, "--plugins", "attngan", "--dataset", "shapes", "--preset", "test", "--set", override,
               "--results-dir", str(root)], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and override.split("=")[0] in err, err
    assert not root.exists()


def test_resume_checks_a_tampered_config(tmp_path, capsys: pytest.CaptureFixture):
    run = tmp_path / "results" / "attngan-shapes-s0-abcd"
    run.mkdir(parents=True)
    cfg = prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    d = cfg.to_dict()
    d["train"]["batch_size"] = 0
    (run / "config.yaml").write_text(yaml.safe_dump(d))
    rc = main(["train", "--resume", str(run), "--results-dir", str(tmp_path / "results")], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "train.batch_size=0" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("method", METHODS)
def test_every_shipped_preset_keeps_the_rules(method: str):
    """The published and CPU presets are within every rule (a rule that refuses one of them is wrong)."""
    from harness.config import load_presets

    for preset in load_presets(PLUGINS.method(method).defaults):
        dataset = preset.split("-", 1)[1] if preset.startswith("paper-") else "shapes"
        cfg = prepare_config(PLUGINS, method, dataset=dataset, data_dir=None, preset=preset, overrides=[], seed=0)
        assert cfg.preset == preset


def test_world_size_is_read_once_and_a_bad_value_is_one_line(monkeypatch):
    """The config rules and the distributed setup read $WORLD_SIZE through one function: a value that is not an
    integer is one ConfigError naming it (the rules used to take it as 1 while the setup refused it)."""
    from harness.config.rules import world_size
    from harness.core.distributed import launched_distributed

    monkeypatch.setenv("WORLD_SIZE", "3")
    assert world_size() == 3 and launched_distributed()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match=r"\$WORLD_SIZE='two' is not an integer"):
        world_size()
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        launched_distributed()
    monkeypatch.delenv("WORLD_SIZE")
    assert world_size() == 1 and not launched_distributed()
