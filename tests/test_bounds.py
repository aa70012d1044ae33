"""Sizes that decide memory or time are checked with the config rules before any directory exists, and every YAML
the harness reads is loaded with its aliases limited."""
from __future__ import annotations

import pytest
import yaml

from harness.build import prepare_config
from harness.cli import main
from harness.config.rules import MAX_CAPTION_WORDS, MAX_EVAL_IMAGES, MAX_SEED
from harness.contract.plugins import build_plugins
from harness.core.rundir import RunConfigError, RunDir
from harness.util.errors import ConfigError
from harness.util.yamlio import YamlAliasError, expanded_size, safe_load

PLUGINS = build_plugins()


def _train(root, *extra: str) -> list[str]:
    return ["train", "--plugins", "attngan", "--dataset", "shapes", "--preset", "test", "--results-dir", str(root),
            *extra]


@pytest.mark.parametrize("extra,words", [
    (["--seed", str(MAX_SEED + 1)], ["seed=9223372036854775808", "<= 9223372036854775807"]),
    (["--seed", "-1"], ["seed=-1", ">= 0"]),
    (["--set", "eval.seed=18446744073709551616"], ["eval.seed="]),
    (["--set", "eval.num_images=1000000000"], ["eval.num_images=1000000000", f"<= {MAX_EVAL_IMAGES}"]),
    (["--set", f"data.words_num={MAX_CAPTION_WORDS + 1}"], ["data.words_num=257", f"<= {MAX_CAPTION_WORDS}"]),
    (["--set", "eval.words_num=100000"], ["eval.words_num=100000"]),
    (["--set", "data.shapes.train_images=6", "--set", "train.batch_size=8"],
     ["train.batch_size=8", "data.shapes.train_images=6"]),
])
def test_sizes_are_refused_before_any_directory(extra: list[str], words: list[str], tmp_path,
                                                capsys: pytest.CaptureFixture):
    root = tmp_path / "results"
    rc = main(_train(root, *extra), plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not root.exists()


def test_largest_seed_and_a_batch_equal_to_the_split_are_allowed():
    args = dict(dataset="shapes", data_dir=None, preset="test")
    cfg = prepare_config(PLUGINS, "attngan", overrides=["data.shapes.train_images=8", "train.batch_size=8"],
                         seed=2 ** 63 - 1, **args)
    assert cfg.seed == 9223372036854775807 and cfg.train.batch_size == cfg.data.shapes.train_images == 8


def test_evaluate_refuses_too_many_images_before_loading_anything(tmp_path, capsys: pytest.CaptureFixture):
    """Only config.yaml exists: a refusal that came after loading the models would name the missing checkpoint."""
    root = tmp_path / "results"
    run = RunDir(root / "attngan-shapes-s0-x")
    run.path.mkdir(parents=True)
    cfg = prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    run.save_config(cfg)
    rc = main(["evaluate", str(run.path), "--num-images", "1000000000", "--results-dir", str(root)], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "--num-images" in err and "eval.num_images=1000000000" in err and str(MAX_EVAL_IMAGES) in err, err


# ------------------------------------------------------------------------------------------------------
# YAML aliases
# ------------------------------------------------------------------------------------------------------
def _list_bomb(levels: int, width: int) -> str:
    """``l0`` holds ``width`` scalars and each next level ``width`` aliases of the one before: width^levels leaves
    once expanded, from a text of a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _dict_bomb(levels: int) -> str:
    """A mapping bomb: ``{a: *prev, b: *prev}`` per level (2^levels leaves), nested under a config key."""
    lines = ["d0: &d0 {a: 1, b: 1}"] + [f"d{i}: &d{i} {{a: *d{i - 1}, b: *d{i - 1}}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\ntrain: *d{levels}\n"


def _count_nodes(obj: object) -> int:
    """Nodes of a constructed YAML value with shared parts counted every time (an independent count)."""
    if isinstance(obj, list):
        return 1 + sum(_count_nodes(v) for v in obj)
    if isinstance(obj, dict):
        return 1 + sum(_count_nodes(k) + _count_nodes(v) for k, v in obj.items())
    return 1


@pytest.mark.parametrize("text", [_list_bomb(9, 10), _dict_bomb(40), "a: &a [1, *a]\n", "&r {k: *r}\n"])
def test_alias_bombs_and_recursive_aliases_are_refused(text: str):
    with pytest.raises(YamlAliasError) as e:
        safe_load(text, "bomb.yaml")
    msg = str(e.value)
    assert msg.startswith("bomb.yaml: ") and "\n" not in msg and "alias" in msg, msg
    assert isinstance(e.value, ConfigError) and isinstance(e.value, yaml.YAMLError)


def test_ordinary_anchors_load_and_are_counted_exactly():
    text = _list_bomb(3, 4) + "plain: {k: [1, 2]}\n"
    assert safe_load(text, "ok.yaml") == yaml.safe_load(text)
    loader = yaml.SafeLoader(text)
    node = loader.get_single_node()
    assert expanded_size(node, 10 ** 6, "ok.yaml") == _count_nodes(yaml.safe_load(text))
    with pytest.raises(YamlAliasError):
        expanded_size(node, 4 ** 3 - 1, "ok.yaml")  # l3 alone adds 4^3 expanded leaves beyond the distinct nodes


def test_alias_bomb_in_a_preset_is_one_line(tmp_path):
    """Unguarded, this 2^18-leaf bomb is only expanded while the preset is flattened (seconds, some 100 MB)."""
    from harness.config import PresetSources, resolve_config

    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("test:\n" + "".join(f"  {line}\n" for line in _dict_bomb(18).splitlines()))
    with pytest.raises(YamlAliasError, match=f"{defaults}: YAML aliases expand"):
        resolve_config("attngan", PresetSources(defaults), preset="test", dataset="shapes")


def test_alias_bomb_in_set_and_in_a_run_config(tmp_path, capsys: pytest.CaptureFixture):
    bomb = "[" + ", ".join(["&a [x, x, x, x, x, x, x, x]"] + [f"&{c} [{', '.join([f'*{p}'] * 8)}]" for p, c in
                                                              zip("abcdefg", "bcdefgh")]) + "]"
    rc = main(_train(tmp_path / "results", "--set", f"eval.metrics={bomb}"), plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--set eval.metrics: YAML aliases expand" in err, err
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "config.yaml").write_text("method: attngan\n" + _list_bomb(9, 10))
    with pytest.raises(RunConfigError, match="alias bomb"):
        run.config_dict()


@pytest.mark.parametrize("seed", [str(MAX_SEED + 1), "-1"])
def test_sample_refuses_a_seed_out_of_range_before_loading_a_model(seed: str, tmp_path, capsys):
    """The run has no checkpoint: a refusal after loading would name the missing checkpoint instead."""
    run = RunDir(tmp_path / "results" / "attngan-shapes-s0-x")
    run.path.mkdir(parents=True)
    run.save_config(prepare_config(PLUGINS, "attngan", dataset="shapes", data_dir=None, preset="test",
                                   overrides=[], seed=0))
    rc = main(["sample", str(run.path), "--caption", "a red circle", "--seed", seed, "--out",
               str(tmp_path / "s.png"), "--results-dir", str(tmp_path / "results")], plugins=PLUGINS)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and f"--seed={seed}" in err and "<= 9223372036854775807" in err, err
    assert not (tmp_path / "s.png").exists()
