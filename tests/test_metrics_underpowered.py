"""Metrics on too few images (issue 13, item 3): the value is computed, the record says ``underpowered`` and
why, and the Markdown / LaTeX / CSV table footnotes the cell and never marks it best."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from harness.evaluation.evaluate import evaluate_run
from harness.evaluation.metrics.interface import EvalOptions
from harness.evaluation.metrics.power import frechet_power, is_power, kid_power, rp_power
from harness.core.runfiles import Record
from harness.core.rundir import new_eval_id
from harness.reporting.tables import write_table
from test_tables import make_plugins, write_run


pytestmark = pytest.mark.usefixtures("one_thread", "no_weights")


# ---- the rules, at their boundaries --------------------------------------------------------------------------
def test_frechet_rule_is_n_at_most_the_feature_dimension():
    assert frechet_power(2049, 2049, 2048) is None
    singular = "2048 generated images ≤ 2048 feature dimensions: the covariance is singular"
    assert frechet_power(2048, 5000, 2048) == singular
    assert "24 real" in frechet_power(3000, 24, 2048) and "generated" not in frechet_power(3000, 24, 2048)
    assert frechet_power(129, -1, 128) is None and frechet_power(128, None, 128) is not None  # count unknown


def test_kid_rule_is_n_below_the_subset_size():
    assert kid_power(1000, 1000, 1000) is None
    assert kid_power(999, 3000, 1000) == "999 images < the KID subset size 1000: subsets shrunk to 999"


def test_is_rule_is_fewer_than_50_per_split():
    assert is_power(500, 10) is None
    assert is_power(499, 10) == "499 images in 10 splits: 49 per split < 50"
    assert is_power(41, 10) is not None and is_power(16, 1) is not None


def test_rp_rule_is_fewer_than_100_per_fold():
    assert rp_power(1000, 10) is None
    assert rp_power(999, 10) == "999 images in 10 folds: 99 per fold < 100"


# ---- the records of an evaluation ----------------------------------------------------------------------------
def test_evaluation_records_say_underpowered(setup):
    plugins, run, root = setup
    asked = EvalOptions(metrics="rp,rp_real,probe_acc,probe_fid,probe_is", num_images=40)
    recs = {r.metric: r.to_json() for r in evaluate_run(plugins, run, asked, strict=True, root=root)}
    # the fixture: 40 images, 4 folds, 2 IS splits, 24 real test images, the probe's 128-d features
    assert recs["rp"]["underpowered"] == "40 images in 4 folds: 10 per fold < 100"
    assert recs["rp_real"]["underpowered"] == "24 images in 4 folds: 6 per fold < 100"
    assert recs["probe_is"]["underpowered"] == "40 images in 2 splits: 20 per split < 50"
    assert recs["probe_fid"]["underpowered"] == ("40 generated and 24 real images ≤ 128 feature dimensions: "
                                                 "the covariance is singular")
    assert "underpowered" not in recs["probe_acc"]  # no rule for an accuracy
    assert all(r["value"] is not None for r in recs.values())  # computed anyway


# ---- the table ------------------------------------------------------------------------------------------------
def _runs(tmp_path: Path):
    plugins = make_plugins(tmp_path)
    good = write_run(tmp_path / "s", plugins, "alpha", 0, {"is": (4.1, 0.05, "splits"), "fid": (20.5, None, None)},
                     real=None, skipped=())
    weak = write_run(tmp_path / "s", plugins, "beta", 0, {}, real=None, skipped=())
    eid = new_eval_id()
    weak.append_records([
        Record(method="beta", dataset="tinyset", seed=0, metric="is", value=9.0, std=0.0, std_over="splits",
               eval_id=eid, extra={"underpowered": "16 images in 10 splits: 1 per split < 50"}),
        Record(method="beta", dataset="tinyset", seed=0, metric="fid", value=3.0, eval_id=eid,
               extra={"underpowered": "16 generated images ≤ 2048 feature dimensions: the covariance is singular"})])
    return plugins, [good, weak]


def test_table_footnotes_underpowered_cells_and_never_bolds_them(tmp_path):
    plugins, runs = _runs(tmp_path)
    md = write_table(plugins, runs, fmt="markdown")
    beta = next(line for line in md.splitlines() if line.startswith("| beta"))
    alpha = next(line for line in md.splitlines() if line.startswith("| alpha"))
    assert "**" not in beta and "9.00" in beta and "3.0" in beta  # higher IS, lower FID: still not best
    assert alpha.count("**") == 4  # the adequately powered values are the best of their columns
    assert "underpowered (too few images; computed anyway, never marked best): 16 images in 10 splits" in md
    assert "underpowered (too few images; computed anyway, never marked best): 16 generated images" in md

    tex = write_table(plugins, runs, fmt="latex")
    beta_tex = next(line for line in tex.splitlines() if line.startswith("beta"))
    assert r"\textbf" not in beta_tex and r"\textsuperscript{" in beta_tex and "underpowered" in tex

    rows = {r["row"]: r for r in csv.DictReader(io.StringIO(write_table(plugins, runs, fmt="csv")))}
    assert rows["beta"]["is_best"] == "" and rows["beta"]["fid_best"] == ""
    assert rows["alpha"]["is_best"] == "*" and rows["alpha"]["fid_best"] == "*"
    assert rows["beta"]["is_underpowered"] == "16 images in 10 splits: 1 per split < 50"
    assert rows["alpha"]["is_underpowered"] == ""
