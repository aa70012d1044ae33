"""Issue 17: the manifest, `datasets captions`, `evaluate-images` (round trip, image runs in the table) and the
bad-folder lines, on a tiny fake method under the shapes/test protocol (no deviation, so the run and the folder
share the protocol)."""
import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from harness.evaluation.metrics.interface import EvalOptions
from harness.config import Config
from harness.util.errors import HarnessError, UnknownNameError
from harness.evaluation.evaluate import build_caption_bank, evaluate_run, generation_schedule
from harness.runs.images import ImageFolder, evaluate_images, export_captions
from harness.evaluation.manifest import FIELDS, read_manifest
from harness.contract.plugins import build_plugins, hookimpl
from harness.core.rundir import RunDir
from harness.contract.types import GenOutput
from sixteen_bit import KINDS, write_16bit
from fake_method import FakeMethod, random_inception

DEFAULTS = """
test:
  data: {branch_num: 2}
  model: {z_dim: 8}
"""


class NoisyGenerator(nn.Module):
    """sentence feature + noise → a per-pixel image (varied values, so that quantisation matters)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.sizes = [cfg.data.base_size * 2 ** i for i in range(cfg.data.branch_num)]
        self.proj = nn.Linear(cfg.model.embedding_dim + cfg.model.z_dim, 3 * 4 * 4)

    def forward(self, noise, text):
        x = torch.tanh(self.proj(torch.cat([text.sent, noise], 1))).view(-1, 3, 4, 4)
        images = [nn.functional.interpolate(x, size=s, mode="bilinear", align_corners=False) for s in self.sizes]
        return GenOutput(images, text.sent[:, :2], text.sent[:, :2], [])


class PixelSpy:
    """A metric that keeps the float images it is handed (``SEEN``) and scores their mean square."""

    SEEN: list = []

    def __init__(self, ctx):
        self.images = []

    def update(self, batch):
        self.images.append(batch.images.detach().double().cpu())

    def finish(self):
        from harness.evaluation.metrics.interface import MetricResult

        x = torch.cat(self.images)
        PixelSpy.SEEN.append(x)
        return [MetricResult("pixels", float(x.pow(2).mean()))]


class NoisyMethod(FakeMethod):
    """test_evaluate_loop's fake method with the per-pixel generator, and the ``pixels`` spy metric."""

    @hookimpl
    def harness_generator(self, cfg, aux):
        return NoisyGenerator(cfg)

    @hookimpl
    def harness_metrics(self):
        from harness.contract.types import MetricInfo

        return [MetricInfo("pixels", "higher", "test spy: mean square of the float images", factory=PixelSpy)]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small CPU networks on one intra-op thread (conftest ``one_thread``)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A run of the fake method under shapes/test whose DAMSM is the protocol's shared one (trained here, 2 steps,
    as `harness train` obtains it), an EMA checkpoint, and its evaluation with saved images."""
    from harness.build import prepare_config
    from harness.core.checkpoint import save_checkpoint, write_pretrained
    from harness.train.pretrain import ensure_damsm

    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("images")
    (tmp / "defaults.yaml").write_text(DEFAULTS)
    plugins = build_plugins([NoisyMethod(tmp / "defaults.yaml")], entry_points=False)
    cfg = prepare_config(plugins, "fakegan", dataset="shapes", data_dir=None, preset="test", seed=0, overrides=[])
    assert not cfg.deviations
    root = tmp / "results"
    run = RunDir.create(root, name="fakegan-s0")
    run.save_config(cfg)
    train = plugins.dataset("shapes").build(cfg.data, "train", train=True, seed=0, cache_root=root)
    test = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    damsm = ensure_damsm(plugins, cfg, root, train, test, "cpu")
    write_pretrained(run, {"damsm": damsm}, len(train.vocab))
    save_checkpoint(run, {"generator_ema": NoisyGenerator(cfg).state_dict(), "vocab_size": len(train.vocab)}, 5)
    folder = tmp / "png"
    records = evaluate_run(plugins, run, EvalOptions(metrics="rp,probe_acc,probe_fid,pixels", save_images=str(folder)),
                           strict=True, root=root)
    return plugins, run, root, folder, records


def _values(records):
    return {r.metric: r.value for r in records if r.ok}


def _copy(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def test_manifest_is_written_in_schedule_order_and_replaced(setup):
    plugins, run, root, folder, _ = setup
    text = (folder / "manifest.csv").read_text()
    lines = list(csv.reader(text.splitlines()))
    assert tuple(lines[0]) == FIELDS and len(lines) == 1 + 16
    assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:06d}.png" for i in range(16)]
    cfg = run.load_config(plugins)
    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    bank = build_caption_bank(ds, cfg.eval.words_num, cfg.eval.seed)
    images, caps = generation_schedule(bank.index, 16, cfg.eval.seed)
    rows = read_manifest(folder / "manifest.csv")
    for pos, (row, img, cap) in enumerate(zip(rows, images, caps)):
        j = int(cap) - int(bank.index.offsets[img])
        assert (row.file, row.image_key, row.caption_index) == (f"{pos:06d}.png", ds.keys[img], j)
        assert row.caption == ds.texts[img][j]  # the raw line an external model is given
        assert row.caption_tokens == " ".join(w for w in row.caption.lower().replace(".", "").split()
                                              if w in ds.vocab.wordtoix)
    # a second evaluation replaces the file (never appends)
    evaluate_run(plugins, run, EvalOptions(metrics="probe_acc", save_images=str(folder)), strict=True, root=root)
    assert (folder / "manifest.csv").read_text() == text


def test_datasets_captions_lists_what_evaluate_uses(setup, tmp_path):
    from harness.cli import main

    plugins, run, root, folder, _ = setup
    out = tmp_path / "captions.csv"
    assert main(["datasets", "captions", "shapes", "--preset", "test", "--out", str(out),
                 "--results-dir", str(root)], plugins=plugins) == 0
    assert out.read_text() == (folder / "manifest.csv").read_text()  # same captions, order and count
    path, n = export_captions(plugins, "shapes", "smoke", tmp_path / "smoke.csv", root=root)
    assert n == 1000 and len(read_manifest(path)) == 1000


def test_round_trip_gives_the_same_numbers_and_a_table_row(setup):
    from harness.reporting.tables import TableOptions, build_table

    plugins, run, root, folder, records = setup
    image_run, recs = evaluate_images(plugins, ImageFolder(folder, "Saved GAN", "shapes", "test", device="cpu"),
                                      EvalOptions(metrics="rp,probe_acc,probe_fid,pixels"), root=root, progress=False)
    a, b = _values(records), _values(recs)
    assert set(a) == set(b) == {"rp", "probe_acc", "probe_fid", "pixels"}
    # every metric is handed the saved 8-bit image (read back as the data transform reads a PNG), in one order
    run_images, folder_images = PixelSpy.SEEN[0], PixelSpy.SEEN[-1]
    assert torch.equal(run_images, folder_images)
    assert torch.equal(((run_images + 1) * 127.5).round(), ((run_images + 1) * 127.5).round().clamp(0, 255))
    assert (((run_images + 1) * 127.5) - ((run_images + 1) * 127.5).round()).abs().max() < 1e-4  # on the 8-bit grid
    for m in a:
        assert b[m] == pytest.approx(a[m], abs=1e-6), m
    info = json.loads((image_run.path / "run.json").read_text())
    prefix = "images-saved-gan-"
    assert image_run.path.name.startswith(prefix) and len(image_run.path.name) == len(prefix) + 4
    assert info["kind"] == "images" and info["label"] == "Saved GAN" and info["source"] == str(folder.resolve())
    assert info["manifest"]["sha256"] == hashlib.sha256((folder / "manifest.csv").read_bytes()).hexdigest()
    assert info["protocol"]["id"] == json.loads((run.path / "run.json").read_text() if (run.path / "run.json").exists()
                                                else "{}").get("protocol", {}).get("id", info["protocol"]["id"])
    rp = {r.metric: r.to_json() for r in recs}["rp"]
    assert rp["protocol"]["base"] == {r.metric: r.to_json() for r in records}["rp"]["protocol"]["base"]  # same protocol
    assert "shared DAMSM" in rp["rp_encoder"] and rp["resized"]["count"] == 0
    table = build_table(plugins, [run, image_run], TableOptions(columns=("params", "speed")))
    rows = {r.label: r for r in table.rows}
    assert {"fakegan", "Saved GAN"} <= set(rows)
    assert rows["Saved GAN"].cells["rp"].value == pytest.approx(rows["fakegan"].cells["rp"].value, abs=1e-6)
    assert rows["Saved GAN"].extras["params"] is None and rows["Saved GAN"].extras["speed"] is None
    with pytest.raises(HarnessError, match="image run"):
        evaluate_run(plugins, image_run, EvalOptions(metrics="rp"), strict=True, root=root)


def test_an_image_run_records_the_protocol_fields_of_a_run_evaluation(setup, tmp_path):
    """Both evaluations build their records' protocol block in one place: an image run's records carry every field a
    run's do (the padding mask and batch size included), with the protocol's values."""
    from harness.runs.images import protocol_config

    plugins, run, root, folder, records = setup
    _, recs = evaluate_images(plugins, ImageFolder(_copy(folder, tmp_path), "Fields", "shapes", "test", device="cpu"),
                              EvalOptions(metrics="pixels"), root=root, progress=False)
    mine, theirs = recs[0].protocol, {r.metric: r.to_json() for r in records}["pixels"]["protocol"]
    assert set(mine) == set(theirs)
    cfg = protocol_config(plugins, "shapes", "test", None)
    assert (mine["attention_mask"], mine["batch_size"]) == (cfg.model.attention_mask, cfg.eval.batch_size)
    assert mine["method_config"] == {}


@pytest.mark.slow
def test_round_trip_inception_metrics_with_a_test_extractor(setup, tmp_path, monkeypatch):
    random_inception(tmp_path, monkeypatch)
    plugins, run, root, _, _ = setup
    folder = tmp_path / "png"
    a = _values(evaluate_run(plugins, run, EvalOptions(metrics="is,fid,kid", save_images=str(folder)),
                             strict=True, root=root))
    _, recs = evaluate_images(plugins, ImageFolder(folder, "inception check", "shapes", "test", device="cpu"),
                              EvalOptions(metrics="is,fid,kid"), root=root, progress=False)
    b = _values(recs)
    assert set(a) == set(b) == {"is", "fid", "kid"}
    for m in a:
        assert b[m] == pytest.approx(a[m], abs=1e-6), m


# ------------------------------------------------------------------------------------------------------
# Bad folders: one line each, in the order
# ------------------------------------------------------------------------------------------------------
def _evaluate(plugins, root, folder, metrics="probe_acc", **kw):
    images = ImageFolder(folder, kw.pop("name", "ext"), "shapes", "test", device="cpu", **kw)
    return evaluate_images(plugins, images, EvalOptions(metrics=metrics), root=root, progress=False)


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_missing_file_is_named_first(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    (d / "000003.png").unlink()
    (d / "000009.png").write_bytes(b"not a png")  # a later fault is not reported first
    (d / "stray.png").write_bytes(b"x")
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert "000003.png is missing" in _one_line(e)
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written


def test_image_not_in_the_manifest(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    shutil.copy(d / "000001.png", d / "extra.png")
    (d / "000009.png").write_bytes(b"not a png")
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert "extra.png is not in the manifest" in _one_line(e) and "--ignore-extra" in str(e.value)
    (d / "000009.png").unlink()
    shutil.copy(folder / "000009.png", d / "000009.png")
    run_dir, recs = _evaluate(plugins, root, d, ignore_extra=True)
    assert json.loads((run_dir.path / "run.json").read_text())["ignored"] == ["extra.png"]


def test_unreadable_image(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    (d / "000009.png").write_bytes(b"not a png")
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert "000009.png: not a readable image" in _one_line(e)


def test_fewer_images_refused_unless_allowed(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    lines = (d / "manifest.csv").read_text().splitlines(keepends=True)
    (d / "manifest.csv").write_text("".join(lines[:13]))  # 12 of 16 images
    for p in sorted(d.glob("*.png"))[12:]:
        p.unlink()
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert "12 images, the protocol shapes/test evaluates 16" in _one_line(e) and "--allow-fewer" in str(e.value)
    _, recs = _evaluate(plugins, root, d, allow_fewer=True)
    rec = recs[0].to_json()
    assert rec["images"] == 12 and rec["protocol"]["num_images"] == 12
    assert "12 of the protocol's 16 images" in rec["underpowered"]


def test_caption_without_known_words(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    rows = list(csv.reader((d / "manifest.csv").read_text().splitlines()))
    rows[5][3] = "zzz qqq"
    with open(d / "manifest.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert "line 6: the caption 'zzz qqq' has no word the vocabulary knows" in _one_line(e)


def test_resized_and_grey_images_are_converted(setup, tmp_path, capsys):
    from harness.reporting.table_cells import rows_to_cells
    from harness.reporting.tables import build_table, write_table

    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    Image.open(d / "000000.png").convert("L").resize((48, 48)).save(d / "000000.png")
    image_run, recs = _evaluate(plugins, root, d)
    n = len(list(d.glob("*.png")))
    assert recs[0].extra["resized"] == {"count": 1, "from": ["48x48"], "to": 32, "filter": "PIL bicubic"}
    line = f"1 of {n} images resized from 48x48 to 32x32 (PIL bicubic) before scoring"
    assert line in capsys.readouterr().out.splitlines()  # evaluate-images says it
    cells = rows_to_cells(build_table(plugins, [image_run]))
    assert [t for m, t in cells.footnotes if m in cells.rows[0].cells[0].markers] == [line]  # and the table's row
    row = next(csv.DictReader(io.StringIO(write_table(plugins, [image_run], fmt="csv"))))
    assert (row["resized"], row["resized_from"], row["resized_to"], row["resize_filter"]) == (
        "1", "48x48", "32x32", "PIL bicubic")


def _rename_in_manifest(folder: Path, old: str, new: str) -> None:
    rows = list(csv.reader((folder / "manifest.csv").read_text().splitlines()))
    rows = [[new if cell == old else cell for cell in row] for row in rows]
    with open(folder / "manifest.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_16bit_images_are_read_by_their_high_byte(setup, tmp_path):
    """Images 0-3 replaced by one 16-bit file of each kind; a copy holds the expected 8-bit pixels as PNGs: the
    metrics are handed the same images from both."""
    plugins, run, root, folder, _ = setup
    wide, eight = _copy(folder, tmp_path / "wide"), _copy(folder, tmp_path / "eight")
    for i, kind in enumerate(KINDS):
        name = f"{i:06d}.png"
        with Image.open(folder / name) as picture:
            target = wide / (name.replace(".png", ".tif") if kind.startswith("tiff") else name)
            expected = write_16bit(target, picture, kind, seed=i)
        if target.name != name:
            (wide / name).unlink()
            _rename_in_manifest(wide, name, target.name)
        Image.fromarray(expected).save(eight / name)
    _evaluate(plugins, root, eight, metrics="pixels")
    from_eight = PixelSpy.SEEN[-1]
    _evaluate(plugins, root, wide, metrics="pixels")
    assert torch.equal(PixelSpy.SEEN[-1], from_eight)


def test_float_pixels_are_refused(setup, tmp_path):
    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    Image.fromarray(np.ones((32, 32), dtype=np.float32)).save(d / "000004.tif")
    (d / "000004.png").unlink()
    _rename_in_manifest(d, "000004.png", "000004.tif")
    with pytest.raises(HarnessError) as e:
        _evaluate(plugins, root, d)
    assert _one_line(e).startswith(f"{d / '000004.tif'}: 32-bit float pixels (mode F) have no fixed range")


def test_label_of_an_installed_method_is_refused(setup):
    plugins, run, root, folder, _ = setup
    with pytest.raises(HarnessError, match="installed method"):
        _evaluate(plugins, root, folder, name="fakegan")



def test_cli_prints_the_line_and_writes_nothing(setup, tmp_path, capsys):
    from harness.cli import main

    plugins, run, root, folder, _ = setup
    d = _copy(folder, tmp_path)
    (d / "000000.png").unlink()
    before = sorted(p.name for p in root.iterdir())
    assert main(["evaluate-images", str(d), "--dataset", "shapes", "--preset", "test", "--name", "ext",
                 "--metrics", "probe_acc", "--results-dir", str(root)], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("harness: error: ") and "000000.png is missing" in err
    assert sorted(p.name for p in root.iterdir()) == before


# ------------------------------------------------------------------------------------------------------
# Metric options: declared by the metric, taken by every evaluating verb
# ------------------------------------------------------------------------------------------------------
class ScaledCount:
    """A plugin metric with an option of its own: the number of images it is handed times ``--count-scale``."""

    def __init__(self, ctx):
        self.scale, self.images = ctx.options.value("count_scale"), 0

    def update(self, batch):
        self.images += len(batch.images)

    def finish(self):
        from harness.evaluation.metrics.interface import MetricResult

        return [MetricResult("scaled_count", self.scale * self.images)]


class ScaledCountPlugin:
    @hookimpl
    def harness_metrics(self):
        from harness.contract.types import MetricInfo, MetricOption

        option = MetricOption("count_scale", "test: the factor", float, metavar="X")
        return [MetricInfo("scaled_count", "higher", "test: images × --count-scale", factory=ScaledCount,
                           options=[option])]


def test_a_plugin_metric_declares_an_option_and_receives_it(setup, tmp_path, capsys):
    from harness.cli import build_parser, main

    _, _, _, folder, _ = setup
    plugins = build_plugins([ScaledCountPlugin()], entry_points=False)
    root = tmp_path / "results"
    assert main(["evaluate-images", str(folder), "--dataset", "shapes", "--preset", "test", "--name", "scaled",
                 "--metrics", "scaled_count", "--count-scale", "2.5", "--results-dir", str(root)],
                plugins=plugins) == 0
    run = RunDir(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    (record,) = run.read_records()
    assert record.metric == "scaled_count" and record.value == 2.5 * len(read_manifest(folder / "manifest.csv"))
    args = build_parser(list(plugins.metric_options().values())).parse_args(["evaluate", "r", "--count-scale", "3"])
    assert args.func.__name__ == "cmd_evaluate" and vars(args)["metric_option:count_scale"] == 3.0


def test_evaluate_images_takes_the_built_in_metrics_options(setup, tmp_path, capsys):
    """`--is-classifier FILE --is-classes 200` are accepted; the classifier file is where the evaluation stops."""
    from harness.cli import main

    plugins, _, _, folder, _ = setup
    missing = tmp_path / "classifier.pt"
    root = tmp_path / "results"
    assert main(["evaluate-images", str(folder), "--dataset", "shapes", "--preset", "test", "--name", "ft",
                 "--metrics", "is_ft", "--is-classifier", str(missing), "--is-classes", "200",
                 "--results-dir", str(root)], plugins=plugins) == 2
    assert capsys.readouterr().err.strip() == f"harness: error: --is-classifier {missing}: no such file"
    assert not root.exists() or not any(root.glob("images-*"))
    with pytest.raises(UnknownNameError, match="is_clases.*is_classes"):
        evaluate_images(plugins, ImageFolder(folder, "ft", "shapes", "test"),
                        EvalOptions(metrics="is_ft", metric_options={"is_clases": 200}), root=root)


# ------------------------------------------------------------------------------------------------------
# Directories exist only complete: an image run, a --save-images folder
# ------------------------------------------------------------------------------------------------------
def _full_disk(*args, **kwargs):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("step", ["save_config", "append_records"])
def test_evaluate_images_failing_midway_leaves_no_image_run(setup, tmp_path, monkeypatch, step):
    plugins, run, root, folder, _ = setup
    before = sorted(p.name for p in root.iterdir())
    monkeypatch.setattr(RunDir, step, _full_disk)
    with pytest.raises(OSError):
        _evaluate(plugins, root, _copy(folder, tmp_path))
    assert sorted(p.name for p in root.iterdir()) == before


def test_save_images_failing_midway_leaves_no_folder(setup, tmp_path, monkeypatch):
    import harness.evaluation.evaluate as ev

    plugins, run, root, folder, _ = setup
    monkeypatch.setattr(ev, "_save_pngs", _full_disk)  # the manifest is written, the first images are not
    out = tmp_path / "saved" / "png"
    with pytest.raises(OSError):
        evaluate_run(plugins, run, EvalOptions(metrics="probe_acc", save_images=str(out)), strict=True, root=root)
    assert not out.exists() and not [p for p in (tmp_path / "saved").iterdir()]


def test_save_images_folder_made_on_this_call_is_removed_even_if_seen_existing(setup, tmp_path, monkeypatch):
    # torchrun: another rank may make the folder before rank 0 looks; whether it was made by this evaluation is
    # rank 0's answer, shared with every rank (simulated: rank 0 answers "made", the folder already exists here)
    import harness.core.distributed as dist
    import harness.evaluation.evaluate as ev

    plugins, run, root, folder, _ = setup
    out = tmp_path / "png"
    out.mkdir()
    monkeypatch.setattr(dist, "on_main", lambda build, share=True: True)
    monkeypatch.setattr(ev, "_save_pngs", _full_disk)
    with pytest.raises(OSError):
        evaluate_run(plugins, run, EvalOptions(metrics="probe_acc", save_images=str(out)), strict=True, root=root)
    assert not out.exists()
