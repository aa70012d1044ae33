"""Typed configuration: presets, `paper` resolution, `--set` overrides type-checked, errors naming the choices."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from core_tiny_method import TinyMethod, TinyRegistry
from harness.config import (ModelConfig, build_config, config_from_dict, new_config, parse_override, set_key,
                            stage_sizes)
from harness.util.errors import ConfigError
from harness.util.hashing import stable_hash
from harness.contract.plugins import build_plugins
from harness.build import prepare_config


@pytest.fixture
def tiny(tmp_path):
    return TinyMethod(tmp_path / "tiny")


def test_preset_then_overrides(tiny):
    cfg = build_config("tinygan", tiny.defaults, preset="test", dataset="shapes",
                       overrides=["train.batch_size=16", "train.lr_g=1e-3", "eval.metrics=rp,probe_acc",
                                  "train.compile=true", "train.max_steps=null"], seed=3)
    assert (cfg.method, cfg.preset, cfg.seed, cfg.data.name) == ("tinygan", "test", 3, "shapes")
    assert cfg.train.batch_size == 16 and cfg.train.lr_g == 1e-3 and cfg.train.compile is True
    assert cfg.train.max_steps is None
    assert cfg.eval.metrics == ["rp", "probe_acc"]
    # `test` extends `smoke`: values of both, test's win; the data set's protocol shapes/test gives 32² images
    assert cfg.data.base_size == 16 and cfg.data.shapes.train_images == 64 and cfg.model.z_dim == 16
    assert stage_sizes(cfg) == [16, 32]
    assert cfg.pretrain.damsm.image_encoder == "small_cnn"


def test_preset_paper_resolves_per_dataset_and_fails_naming_the_available_presets(tiny):
    cfg = build_config("tinygan", tiny.defaults, preset="paper", dataset="cub")
    assert cfg.preset == "paper-cub" and cfg.model.embedding_dim == 256
    with pytest.raises(ConfigError) as e:  # the method lacks the preset
        build_config("tinygan", tiny.defaults, preset="paper", dataset="shapes")
    msg = str(e.value)
    assert "paper-shapes" in msg and "paper-cub" in msg and "\n" not in msg
    with pytest.raises(ConfigError) as e:  # the data set lacks the protocol
        build_config("tinygan", tiny.defaults, preset="smoke", dataset="cub")
    msg = str(e.value)
    assert "no protocol 'smoke'" in msg and "its protocols: paper, test" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="no protocol 'nosuch'.*its protocols: paper, smoke, test"):
        build_config("tinygan", tiny.defaults, preset="nosuch", dataset="shapes")


@pytest.mark.parametrize("override, match", [
    ("train.nosuch=1", r"unknown config key 'train.nosuch'; valid keys in train: batch_size, epochs"),
    ("nosuch.x=1", r"unknown config key 'nosuch'; valid keys: method, seed, preset, protocol, deviations, data, model"),
    ("train.batch_size=abc", r"train.batch_size: 'abc' is not an int"),
    ("train.batch_size=1.5", r"train.batch_size: 1.5 is not an int"),
    ("train.lr_g=fast", r"train.lr_g: 'fast' is not a float"),
    ("train.compile=maybe", r"train.compile: 'maybe' is not a bool"),
    ("train.amp=fp16", r"train.amp: 'fp16' is not one of auto, bf16, off"),
    ("pretrain.damsm.image_encoder=resnet", r"is not one of inception_v3, small_cnn"),
    ("train=1", r"train is a section; set one of its keys: train.batch_size"),
    ("train.batch_size.x=1", r"train.batch_size is a value, not a section"),
    ("train.batch_size", r"--set expects key=value"),
])
def test_bad_overrides_name_the_key_and_the_choices(tiny, override, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_config("tinygan", tiny.defaults, preset="test", dataset="shapes", overrides=[override])
    assert "\n" not in str(e.value)


def test_bad_preset_values_fail_the_same_way(tmp_path):
    bad = tmp_path / "defaults.yaml"
    bad.write_text(yaml.safe_dump({"smoke": {"train": {"batch_sise": 4}}}))
    with pytest.raises(ConfigError, match="batch_sise"):
        build_config("m", bad, preset="smoke", dataset="shapes")
    bad.write_text(yaml.safe_dump({"test": {"extends": "b"}, "b": {"extends": "test"}}))
    with pytest.raises(ConfigError, match="extends itself"):
        build_config("m", bad, preset="test", dataset="shapes")


def test_parse_override_keeps_strings():
    assert parse_override("data.data_dir=/x/y") == ("data.data_dir", "/x/y")
    assert parse_override("train.max_steps=10") == ("train.max_steps", 10)
    assert parse_override("a.b={x: 1}") == ("a.b", "{x: 1}")


@dataclass
class WideModel(ModelConfig):
    upsample: Literal["carafe", "nearest"] = "carafe"
    extra_layers: Optional[int] = None
    widths: list[int] = field(default_factory=lambda: [1, 2])


def test_method_section_types_and_round_trip(tiny):
    cfg = build_config("tinygan", tiny.defaults, preset="test", dataset="shapes",
                       overrides=["model.upsample=nearest", "model.extra_layers=2", "model.widths=3,4"],
                       section_types={"model": WideModel})
    assert isinstance(cfg.model, WideModel) and cfg.model.upsample == "nearest" and cfg.model.widths == [3, 4]
    with pytest.raises(ConfigError, match="upsample: 'bilinear' is not one of carafe, nearest"):
        set_key(cfg, "model.upsample", "bilinear")
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), {"model": WideModel})
    assert again == cfg and again.hash() == cfg.hash()
    assert cfg.hash("model") != new_config({"model": WideModel}).hash("model")
    with pytest.raises(ConfigError, match="not one of data, model"):
        new_config({"nosuch": WideModel})


def test_stable_hash_is_order_independent():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_prepare_config_checks_method_and_dataset_first(tiny):
    plugins = build_plugins(extra=[tiny, TinyRegistry(datasets=("tinyset",))])
    cfg = prepare_config(plugins, "tinygan", dataset="tinyset", data_dir=None, preset="test", overrides=[], seed=1)
    assert cfg.seed == 1 and cfg.data.name == "tinyset"
    with pytest.raises(Exception, match="unknown dataset 'nosuch'; installed: .*tinyset"):
        prepare_config(plugins, "tinygan", dataset="nosuch", data_dir=None, preset="test", overrides=[], seed=0)
    with pytest.raises(Exception, match="unknown plugin 'nosuch'; installed: .*tinygan"):
        prepare_config(plugins, "nosuch", dataset="tinyset", data_dir=None, preset="test", overrides=[], seed=0)
