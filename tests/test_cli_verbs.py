"""The CLI surface: every verb parses, every verb takes --results-dir, the listing verbs print the registries."""
from __future__ import annotations

import pytest

from core_tiny_method import TinyMethod, TinyRegistry
from harness.cli import build_parser, main
from harness.contract.plugins import build_plugins, hookimpl

VERBS = {
    "run": ["run", "--plugins", "a,b", "--seeds", "0,1,2", "--set", "train.batch_size=4", "--set", "eval.every=0"],
    "train": ["train", "--plugins", "a", "--dataset", "cub", "--data-dir", "d", "--seed", "2", "--resume", "r"],
    "evaluate": ["evaluate", "r", "--metrics", "is,fid", "--num-images", "10", "--split", "test"],
    "sample": ["sample", "r1", "r2", "--caption", "a red circle", "--seed", "3"],
    "table": ["table", "r1", "--format", "latex", "--with-paper-numbers", "--columns", "params,speed"],
    "plugins": ["plugins"],
    "datasets": ["datasets"],
    "datasets write": ["datasets", "write", "shapes", "out", "--layout", "cub"],
    "datasets inspect": ["datasets", "inspect", "cub", "--data-dir", "d"],
    "metrics": ["metrics"],
    "weights": ["weights"],
    "fetch": ["fetch", "cub", "inception_tf_fid", "--data-dir", "d", "--offline", "--mirror", "http://m"],
    "inspect": ["inspect", "--plugins", "a", "--preset", "paper", "--vocab-size", "5450", "--json"],
    "config": ["config", "--plugins", "a", "--dataset", "cub", "--preset", "paper", "--set", "eval.seed=1", "--json"],
    "import-checkpoint": ["import-checkpoint", "attngan", "bird_AttnGAN2.pth", "--dataset", "cub", "--data-dir", "d"],
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_parses_and_takes_results_dir(verb):
    args = build_parser().parse_args(VERBS[verb] + ["--results-dir", "/some/where"])
    assert args.results_dir == "/some/where"


def test_parsed_values():
    args = build_parser().parse_args(VERBS["run"])
    assert (args.plugins, args.seeds, args.overrides, args.dataset) == ("a,b", "0,1,2",
                                                                       ["train.batch_size=4", "eval.every=0"], "shapes")
    assert build_parser().parse_args(VERBS["sample"]).runs == ["r1", "r2"]


def test_listing_verbs(tmp_path, capsys):
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "t"), TinyRegistry(datasets=("tinyset",),
                                                                            metrics={"tiny_metric": "lower"})])
    assert main(["plugins"], plugins=plugins) == 0
    assert "tinygan" in capsys.readouterr().out
    assert main(["datasets"], plugins=plugins) == 0
    assert "tinyset" in capsys.readouterr().out
    assert main(["metrics"], plugins=plugins) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("tiny_metric")]
    assert line and "lower" in line[0]


def test_no_verb_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_help_lists_every_verb():
    text = build_parser().format_help()
    for verb in ("run", "train", "evaluate", "sample", "table", "plugins", "datasets", "metrics", "weights",
                 "fetch", "inspect", "import-checkpoint"):
        assert verb in text


def test_run_and_evaluate_take_the_metrics_options(capsys):
    args = build_parser().parse_args(["run", "--plugins", "a", "--metrics", "is_ft", "--is-classifier", "c.pt",
                                      "--is-classes", "200", "--is-temperature", "0.5"])
    assert {k: v for k, v in vars(args).items() if k.startswith("metric_option:") and v is not None} == {
        "metric_option:is_classifier": "c.pt", "metric_option:is_classes": 200, "metric_option:is_temperature": 0.5}
    for flag, name in (("--clip-model", "clip_model"), ("--fid-stats", "fid_stats"), ("--rp-encoder", "rp_encoder")):
        for verb in (["evaluate", "r"],
                     ["evaluate-images", "d", "--dataset", "cub", "--preset", "paper", "--name", "x"]):
            assert vars(build_parser().parse_args([*verb, flag, "f"]))[f"metric_option:{name}"] == "f"
    # a resumed session keeps its saved request: a metric option given again is named and refused
    assert main(["run", "--resume", "some-session", "--is-classes", "5"]) == 2
    assert "drop --is-classes" in capsys.readouterr().err


class _ClashingMetrics:
    def __init__(self, options):
        self.options = options

    @hookimpl
    def harness_metrics(self):
        from harness.contract.types import MetricInfo

        return [MetricInfo(f"clash{i}", "higher", "test", options=[o]) for i, o in enumerate(self.options)]


def test_a_metric_option_that_clashes_is_one_line(capsys):
    from harness.contract.types import MetricOption

    same_name = _ClashingMetrics([MetricOption("is_classes", "as text", str)])  # is_ft's is an int
    verb_option = _ClashingMetrics([MetricOption("num_images", "evaluate has its own")])
    for plugin, words in ((same_name, ["metric option 'is_classes' is declared by", "'is_ft'", "'clash0'",
                                       "with different types"]),
                          (verb_option, ["--num-images clashes with an option of `harness evaluate`"])):
        assert main(["metrics"], plugins=build_plugins(extra=[plugin], entry_points=False)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and all(w in err for w in words), err
