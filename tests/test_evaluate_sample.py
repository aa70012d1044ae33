"""`harness sample`: caption reading, unknown words, one sheet for several runs with the same noise."""
import pytest
import torch
from PIL import Image

from harness.util.errors import HarnessError
from harness.runs.sample import read_captions, sample_sheet


pytestmark = pytest.mark.usefixtures("one_thread")



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


def test_captions_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    f = tmp_path / "caps.txt"
    f.write_bytes("a red circle\na réd square\n".encode("utf-8") + b"a r\xe9d star\n")
    with pytest.raises(HarnessError) as e:
        read_captions([], str(f))
    assert str(e.value) == f"--captions {f} line 3: byte 0xe9 is not UTF-8; save the file as UTF-8"
    f.write_bytes("a red circle\na réd square\n".encode("utf-8"))
    assert read_captions([], str(f)) == ["a red circle", "a réd square"]


def test_unknown_words_are_named_as_typed(setup, tmp_path, capsys):  # noqa: F811
    """réd is read as rd (non-ASCII letters dropped), an undecodable command-line byte splits r\\xe9d into r, d:
    the error names the word the user typed and how it was read, not only the token."""
    from harness.cli import main

    plugins, run, root = setup
    with pytest.raises(HarnessError) as e:
        sample_sheet(plugins, [run], ["a réd circle"], seed=0, out=tmp_path / "x.png", checkpoint=None)
    assert "words not in the vocabulary" in str(e.value)
    assert str(e.value).endswith(" words): réd (read as 'rd': non-ASCII letters dropped)")
    rc = main(["sample", str(run.path), "--caption", "a r\udce9d circle", "--out", str(tmp_path / "y.png"),
               "--results-dir", str(root)], plugins=plugins)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "words not in the vocabulary" in err and err.strip().endswith("r\\xe9d (read as 'r d': bytes not UTF-8)")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


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


def test_generation_is_seeded_and_independent_of_the_other_captions(setup):  # noqa: F811
    from harness.build import load_inference_models
    from harness.evaluation.generation import generate_images

    plugins, run, root = setup
    models = load_inference_models(plugins, run)
    ds = plugins.dataset("shapes").build(models.cfg.data, "test", train=False, seed=0, cache_root=root)
    toks = [ds.vocab.encode(c) for c in ["a red circle", "a big blue square on a white background"]]
    a = generate_images(models, toks, seed=0).images
    assert torch.equal(a, generate_images(models, toks, seed=0).images)
    assert not torch.allclose(a, generate_images(models, toks, seed=1).images)
    other = generate_images(models, [ds.vocab.encode("a green star"), toks[1]], seed=0).images
    torch.testing.assert_close(other[1], a[1])  # image 1 depends on its caption and (seed, 1) only


def test_sheet_names_runs_as_the_table_does(setup, tmp_path, monkeypatch):
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
