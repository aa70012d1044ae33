"""DF-GAN's published numbers (DF-GAN README's Performance table, TISE's CUB row) in the right metric columns of
``harness table --with-paper-numbers``, on CUB and on COCO."""
from __future__ import annotations

from harness.contract.plugins import build_plugins
from harness.reporting.tables import TableOptions, write_table
from test_tables import parse_csv, write_run


def _numbers(note: str) -> list[float]:
    return [float(x) for x in note.split("; ")]


def test_reported_rows_put_each_published_number_under_its_metric(tmp_path):
    plugins = build_plugins()
    runs = [write_run(tmp_path / "s", plugins, "dfgan", 0, {"fid_tv": (30.0, None, None)}, dataset=dataset,
                      real=None, skipped=()) for dataset in ("cub", "coco")]
    rows = parse_csv(write_table(plugins, runs, TableOptions(with_paper_numbers=True), fmt="csv"))
    cub, coco = rows["DF-GAN (reported) [cub]"], rows["DF-GAN (reported) [coco]"]
    assert cub["kind"] == coco["kind"] == "reported"
    # three CUB FIDs: the paper, the released model (DF-GAN README) and TISE's re-evaluation, kept as text
    assert cub["fid_tv"] == "" and _numbers(cub["fid_tv_note"]) == [14.81, 12.10, 16.46]
    assert (float(cub["is_ft"]), float(cub["is_ft_std"])) == (14.70, 0.16)  # TISE's IS*
    assert (float(cub["rp"]), float(cub["rp_std"])) == (42.96, 0.79)
    assert _numbers(coco["fid_tv_note"]) == [19.32, 15.41] and coco["is_ft"] == coco["rp"] == ""
