"""`harness sample`: caption reading, unknown words, one sheet for several runs with the same noise."""
import pytest
import torch
from PIL import Image

from harness.util.errors import HarnessError
from harness.runs.sample import read_captions, sample_sheet

from test_evaluate_loop import _one_thread, setup  # noqa: F401  (the fake-method run, one thread)


def test_read_captions(tmp_path):
    f = tmp_path / "caps.txt"
    f.write_text("a red circle\n\n# comment\na blue square on a white background\n")
    assert read_captions(["a green star"], str(f)) == ["a green star", "a red circle",
                                                        "a blue square on a white background"]
    with pytest.raises(HarnessError, match="no captions"):
        read_captions([], None)
    with pytest.raises(HarnessError, match="no such file"):
        read_captions([], str(tmp_path / "missing.txt"))
    with pytest.raises(HarnessError, match=r"--caption '  ' is empty: give a caption with words"):
        read_captions(["a red circle", "  "], None)  # said, not dropped: the sheet would lack a row


def test_sheet_same_noise_side_by_side(setup, tmp_path):  # noqa: F811
    plugins, run, root = setup
    caps = ["a red circle", "a blue square on a white background", "a small green star"]
    out = sample_sheet(plugins, [run, run], caps, seed=3, out=tmp_path / "sheet.png", checkpoint=None)
    im = Image.open(out)
    w, h = im.size
    assert w > 3 * 32 and h > 2 * 32
    again = sample_sheet(plugins, [run, run], caps, seed=3, out=tmp_path / "again.png", checkpoint=None)
    other = sample_sheet(plugins, [run, run], caps, seed=4, out=tmp_path / "other.png", checkpoint=None)
    assert out.read_bytes() == again.read_bytes()  # same seed → same noise → same sheet
    assert out.read_bytes() != other.read_bytes()
    with pytest.raises(HarnessError, match="zebra"):
        sample_sheet(plugins, [run], ["a zebra circle"], seed=0, out=tmp_path / "x.png", checkpoint=None)


def test_generation_is_seeded_and_order_free(setup):  # noqa: F811
    from harness.runs.sample import generate_for_captions
    from harness.build import load_inference_models

    plugins, run, root = setup
    models = load_inference_models(plugins, run)
    ds = plugins.dataset("shapes").build(models.cfg.data, "test", train=False, seed=0, cache_root=root)
    toks = [ds.vocab.encode(c) for c in ["a red circle", "a big blue square on a white background"]]
    noise = torch.randn(2, models.cfg.model.z_dim, generator=torch.Generator().manual_seed(0))
    a = generate_for_captions(models, toks, noise, words_num=25, seed=0, device=torch.device("cpu"))
    b = generate_for_captions(models, toks[::-1], noise.flip(0), words_num=25, seed=0, device=torch.device("cpu"))
    torch.testing.assert_close(a, b.flip(0))  # each image depends on its own caption and noise only


def test_sheet_names_runs_as_the_table_does(setup, tmp_path, monkeypatch):  # noqa: F811
    """The sheet's row label is the run's table label, ``(deviates: …)`` included, for a run with run.json and
    for one without (whose label is derived from config.yaml the same way)."""
    import shutil

    import harness.core.sheets as sheets
    from harness.build import prepare_config
    from harness.core.rundir import RunDir
    from harness.reporting.tables import build_table
    from harness.runs.info import write_run_info

    plugins, run, _ = setup
    cfg = prepare_config(plugins, "fakegan", dataset="shapes", data_dir=None, preset="test", seed=0,
                         overrides=["data.shapes.train_images=120", "data.shapes.test_images=24",
                                    "eval.num_images=7"])
    assert "eval.num_images" in cfg.deviations
    with_info = RunDir(shutil.copytree(run.path, tmp_path / "with-info"))
    with_info.save_config(cfg)
    write_run_info(plugins, with_info, cfg)
    without = RunDir(shutil.copytree(run.path, tmp_path / "without-info"))
    without.save_config(cfg)
    drawn = []
    save = sheets.save_sheet
    monkeypatch.setattr(sheets, "save_sheet", lambda *a, **k: drawn.append(k["row_labels"]) or save(*a, **k))
    for r in (with_info, without):
        sample_sheet(plugins, [r], ["a red circle"], seed=0, out=tmp_path / f"{r.path.name}.png", checkpoint=None)
        label = build_table(plugins, [r]).rows[0].label
        assert "(deviates: " in label and "eval.num_images=7" in label
        assert drawn[-1] == [f"{label} s0 @5"]
