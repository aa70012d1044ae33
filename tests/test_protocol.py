"""Protocols belong to the data set (issue 15): protocol presets, method presets as deltas, declared deviations,
`harness config` sources, protocol ids in records and table rows, run.json and the fallback for older runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from core_tiny_method import TinyMethod, TinyRegistry
from harness.cli import main
from harness.config import declare_deviation, leaf_keys, new_config
from harness.util.errors import ConfigError
from harness.contract.plugins import build_plugins
from harness.config.protocol import (NOT_PROTOCOL_KEYS, PROTOCOL_KEYS, evaluated_values, flatten,
                              protocol_name, protocol_values, record_protocol)
from harness.core.runfiles import Record
from harness.core.rundir import RunDir, new_eval_id
from harness.build import prepare_config
from harness.core.rundir import read_run_info
from harness.runs.info import write_run_info
from harness.reporting.table_cells import rows_to_cells
from harness.reporting.table_render import cells_to_markdown
from harness.reporting.tables import TableOptions, build_table
from harness.train.pretrain import damsm_key
from readme_method import readme_method_plugins

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ("attngan", "dmgan", "ecagan", "caegan", "dfgan")


def test_readme_lists_exactly_the_protocol_keys_and_every_key_is_classified():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Protocols", 1)[1].split("Not in it", 1)[0]
    assert tuple(re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)`", section)) == PROTOCOL_KEYS
    cfg = new_config()
    shared = [k for k in leaf_keys(cfg) if k.split(".")[0] in ("data", "eval") or k.startswith("pretrain.damsm.")]
    assert sorted(shared + ["model.embedding_dim"]) == sorted(PROTOCOL_KEYS + NOT_PROTOCOL_KEYS)


def test_builtin_method_presets_set_no_protocol_key():
    for name in BUILTIN:
        presets = yaml.safe_load((ROOT / "plugins" / name / "defaults.yaml").read_text())
        for preset, values in presets.items():
            keys = [k for k in flatten({k: v for k, v in values.items() if k != "extends"})
                    if any(k == p or p.startswith(k + ".") or k.startswith(p + ".") for p in PROTOCOL_KEYS)]
            assert keys == [] and "deviations" not in values, (name, preset, keys)


def test_every_method_resolves_the_same_protocol_and_damsm_key(tmp_path):
    plugins = readme_method_plugins(tmp_path)
    for dataset, preset in (("cub", "paper"), ("cub", "test"), ("coco", "paper"), ("coco", "test"),
                            ("shapes", "smoke"), ("shapes", "test")):
        values, keys = {}, {}
        for method in BUILTIN + ("mymethod",):
            try:
                cfg = prepare_config(plugins, method, dataset=dataset, data_dir=None, preset=preset, overrides=[],
                                     seed=0)
            except ConfigError as e:  # ECAGAN has no COCO preset: the one line names the presets it has
                assert (method, dataset) in (("ecagan", "coco"), ("mymethod", "coco")) and "available:" in str(e)
                continue
            values[method] = protocol_values(cfg)
            keys[method] = damsm_key(cfg, 100)
            assert cfg.deviations == {}
        assert len(values) >= 3
        assert all(v == values["dmgan"] for v in values.values()), (dataset, preset)
        assert all(k == keys["dmgan"] for k in keys.values()), (dataset, preset)


def _method(tmp_path, yaml_text: str, name: str = "devgan") -> TinyMethod:
    m = TinyMethod(tmp_path / name, name)
    m.defaults.write_text(yaml_text)
    return m


def test_undeclared_protocol_key_is_refused_declared_it_labels_the_row(tmp_path, capsys):
    undeclared = _method(tmp_path, "test:\n  data: {branch_num: 2}\n  eval: {num_images: 24}\n")
    plugins = build_plugins(extra=[undeclared])
    rc = main(["config", "--plugins", "devgan", "--dataset", "shapes", "--preset", "test"], plugins=plugins)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "eval.num_images" in err and "deviations" in err

    declared = _method(tmp_path, "test:\n  data: {branch_num: 2}\n  eval: {num_images: 24}\n"
                                 "  deviations: {eval.num_images: 'a smaller evaluation'}\n", name="devgan2")
    plugins = build_plugins(extra=[declared])
    cfg = prepare_config(plugins, "devgan2", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    assert cfg.eval.num_images == 24 and cfg.deviations == {"eval.num_images": "a smaller evaluation"}
    run = RunDir.create(tmp_path / "runs", name="r")
    run.save_config(cfg)
    info = write_run_info(plugins, run, cfg)
    assert info["label"] == "devgan2 (deviates: eval.num_images=24)"
    assert info["deviations"] == {"eval.num_images": {"value": 24, "reason": "a smaller evaluation"}}
    assert info["protocol"]["name"] == "shapes/test" and info["params"]["generator"] > 0
    assert info["started"] and info["finished"] is None


def test_extends_of_an_uninstalled_method_fails_in_one_line(tmp_path, capsys):
    plugins = build_plugins(extra=[_method(tmp_path, "test:\n  extends: nosuchgan/test\n")], entry_points=False)
    rc = main(["config", "--plugins", "devgan", "--dataset", "shapes", "--preset", "test"], plugins=plugins)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "nosuchgan" in err and "not installed" in err and "dmgan" in err


def test_config_reports_the_source_of_each_value(capsys):
    plugins = build_plugins()
    rc = main(["config", "--plugins", "ecagan", "--dataset", "shapes", "--preset", "test", "--set",
               "train.lr_g=0.001", "--set", "eval.num_images=24", "--json"], plugins=plugins)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    src, cfg = out["sources"], out["config"]
    assert src["train.lr_g"] == "--set" and cfg["train"]["lr_g"] == 0.001
    assert src["eval.words_num"] == "protocol:shapes/test" and src["eval.seed"] == "protocol:shapes/smoke"
    assert src["model.gf_dim"] == "method:dmgan/test" and src["model.upsample"] == "method:ecagan/paper-cub"
    assert src["train.log_every"] == "method:dmgan/test" and src["train.sync_bn"] == "default"
    assert src["data.base_size"] == "derived" and cfg["data"]["base_size"] == 16
    assert cfg["deviations"] == {"eval.num_images": "--set on the command line"}


def test_import_can_declare_a_deviation_of_a_resolved_config():
    plugins = build_plugins()
    cfg = prepare_config(plugins, "dmgan", dataset="shapes", data_dir=None, preset="test", overrides=[], seed=0)
    declare_deviation(cfg, "eval.batch_size", 100)
    assert cfg.eval.batch_size == 100 and cfg.deviations == {"eval.batch_size": "the original's evaluation"}


# ------------------------------------------------------------------------------------------------------
# Tables: rows keyed by (label, protocol id), footnotes, the fallback for runs without run.json
# ------------------------------------------------------------------------------------------------------
def _tiny(tmp_path: Path):
    return build_plugins(extra=[TinyMethod(tmp_path / "tinygan"), TinyRegistry(datasets=("tinyset",))])


def _run(parent: Path, plugins, name: str, *, overrides=(), num_images=None, value=50.0, run_json=True) -> RunDir:
    cfg = prepare_config(plugins, "tinygan", dataset="tinyset", data_dir=None, preset="test",
                         overrides=list(overrides), seed=0)
    run = RunDir.create(parent, name=name)
    run.save_config(cfg)
    if run_json:
        write_run_info(plugins, run, cfg)
    n = num_images or cfg.eval.num_images
    protocol = record_protocol(evaluated_values(cfg, num_images=n, split="test"), name=protocol_name(cfg.to_dict()),
                               variant="v", weights={})
    run.append_records([Record(method="tinygan", dataset="tinyset", seed=0, metric="rp", value=value, std=1.0,
                               std_over="folds", eval_id=new_eval_id(), protocol=protocol)])
    return run


def test_two_runs_with_other_eval_num_images_make_two_rows_and_a_footnote(tmp_path):
    plugins = _tiny(tmp_path)
    a = _run(tmp_path, plugins, "a", value=40.0)
    b = _run(tmp_path, plugins, "b", overrides=["eval.num_images=32"], value=60.0)
    (tmp_path / "tinygan" / "defaults.yaml").write_text("{not: [a preset")  # the table reads run.json, no preset
    table = build_table(plugins, [a, b], TableOptions(columns=("params",)))
    assert all(r.extras["params"] > 0 for r in table.rows if r.kind == "reproduced")
    rows = {r.label: r.cells["rp"].value for r in table.rows if r.kind == "reproduced"}
    assert rows == {"tinygan": 40.0, "tinygan (deviates: eval.num_images=32)": 60.0}
    text = cells_to_markdown(rows_to_cells(table))
    (note,) = [line for line in text.splitlines() if "different protocols" in line]
    assert "eval.num_images = 30000 (tinygan) vs 32 (tinygan (deviates: eval.num_images=32))" in note


def test_one_label_evaluated_under_two_protocols_is_never_averaged(tmp_path):
    plugins = _tiny(tmp_path)
    a = _run(tmp_path, plugins, "a", value=40.0)
    b = _run(tmp_path, plugins, "b", num_images=24, value=60.0)  # `harness evaluate --num-images 24`
    table = build_table(plugins, [a, b])
    rows = [r for r in table.rows if r.kind == "reproduced"]
    assert len(rows) == 2 and sorted(r.cells["rp"].value for r in rows) == [40.0, 60.0]
    assert all(re.fullmatch(r"tinygan \[protocol [0-9a-f]{6}\]", r.label) for r in rows)
    assert any("eval.num_images = 30000" in n and "vs 24" in n for n in table.protocol_notes)
    # the same protocol: one row, averaged over both runs
    c = _run(tmp_path, plugins, "c", value=60.0)
    (row,) = [r for r in build_table(plugins, [a, c]).rows if r.kind == "reproduced"]
    assert row.label == "tinygan" and row.cells["rp"].value == 50.0 and row.cells["rp"].n == 2


def test_old_run_without_run_json_still_tables(tmp_path):
    plugins = _tiny(tmp_path)
    old = _run(tmp_path, plugins, "old", value=42.0, run_json=False)
    d = yaml.safe_load(old.config_path.read_text())  # a config.yaml written before protocols existed
    for key in ("protocol", "deviations"):
        d.pop(key)
    d["data"].pop("image_size")
    old.config_path.write_text(yaml.safe_dump(d))
    records = old.read_records()
    for r in records:
        r.protocol = {"variant": "v"}  # no ids yet
    old.records_path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    assert read_run_info(old) is None

    new = _run(tmp_path, plugins, "new", value=44.0)
    table = build_table(plugins, [old, new], TableOptions(columns=("params",)))
    (row,) = [r for r in table.rows if r.kind == "reproduced"]  # the same protocol as computed from config.yaml
    assert row.label == "tinygan" and row.cells["rp"].value == 43.0 and row.extras["params"] > 0
    assert main(["table", str(old.path)], plugins=plugins) == 0


def test_a_protocol_key_added_later_keeps_earlier_protocol_ids():
    """``eval.truncation`` joined the protocol after runs were recorded: at its old value (0, none) it is left out,
    so a new run's protocol id equals that of a run whose config.yaml predates the key; a truncated run differs."""
    from harness.config.protocol import protocol_id, protocol_values

    cfg = new_config()
    old = cfg.to_dict()
    del old["eval"]["truncation"]  # a config.yaml written before the key existed
    assert "eval.truncation" not in protocol_values(cfg)
    assert protocol_id(protocol_values(cfg)) == protocol_id(protocol_values(old))
    cfg.eval.truncation = 0.88
    assert protocol_values(cfg)["eval.truncation"] == 0.88
    assert protocol_id(protocol_values(cfg)) != protocol_id(protocol_values(old))
