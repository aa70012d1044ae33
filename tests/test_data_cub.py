"""cub / coco loaders on data sets the shapes writer produces in the original layouts: crop rule, read-back,
vocabulary reuse, determinism, every bad-data case, the cached validation verdict, and `datasets inspect`."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.data import validate
from harness.data.coco import build_coco
from harness.data.cub import build_cub
from harness.data.safe_pickle import dump_pickle, load_pickle
from harness.data.shapes import ShapesDataset
from harness.data.transforms import bbox_crop_box
from harness.data.validate import check_dataset
from harness.data.writer import write_dataset
from harness.util.errors import DataError
from data_fixtures import SMALL, data_plugins, small_cfg

@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("written")
    return {layout: write_dataset(data_plugins(), "shapes", base / layout, layout=layout, overrides=SMALL)
            for layout in ("cub", "coco")}


@pytest.fixture
def cub_copy(written: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(written["cub"], tmp_path / "cub"))


# ---- crop rule ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bbox,size,expected", [
    ((100, 100, 40, 20), (500, 500), (90, 80, 150, 140)),  # r = 30, centre (120, 110): a 60 = 1.5·40 square
    ((60, 27, 325, 304), (500, 375), (0, 0, 465, 375)),  # r = int(243.75) = 243, centre (222, 179), clipped
    ((10, 20, 41, 13), (300, 200), (0, 0, 60, 56)),  # r = int(30.75) = 30, centre (int 30.5, int 26.5)
    ((450, 300, 40, 60), (480, 360), (425, 285, 480, 360)),  # r = 45, centre (470, 330): right/bottom clipped
])
def test_bbox_crop_hand_computed(bbox, size, expected):
    assert bbox_crop_box(bbox, *size) == expected


# ---- reading back what the writer wrote -----------------------------------------------------------------------
def test_cub_reads_back_the_written_data(written):
    shapes = ShapesDataset(small_cfg("shapes", None), "train", train=False)
    ds = build_cub(small_cfg("cub", written["cub"]), "train", train=True)
    assert len(ds) == 12 and ds.keys == shapes.keys and ds.captions_per_image == 10
    assert ds.class_ids.tolist() == (shapes.class_ids + 1).tolist()  # CUB numbers classes from 1
    assert ds.vocab.ixtoword == shapes.vocab.ixtoword  # captions.pickle vocabulary used unchanged
    assert all(ds.captions(i) == shapes.captions(i) for i in range(len(ds)))
    item = ds[3]
    assert [tuple(im.shape) for im in item["images"]] == [(3, 16, 16), (3, 32, 32), (3, 64, 64)]
    assert all(im.min() >= -1 and im.max() <= 1 for im in item["images"])
    assert ds.stage_sizes == [16, 32, 64] and ds.words_num == 18
    test = build_cub(small_cfg("cub", written["cub"]), "test", train=False)
    assert len(test) == 6 and test.words_num == 25


def test_eval_transform_recovers_the_scene(written):
    """The bbox crop of the written canvas is exactly the scene: eval images match a direct render."""
    shapes = ShapesDataset(small_cfg("shapes", None), "test", train=False)
    ds = build_cub(small_cfg("cub", written["cub"]), "test", train=False)
    for i in range(len(ds)):
        got, want = ds[i]["images"][-1], shapes[i]["images"][-1]
        assert (got - want).abs().mean() < 0.06  # JPEG and resampling only


def test_coco_layout(written):
    ds = build_coco(small_cfg("coco", written["coco"]), "train", train=True)
    assert len(ds) == 12 and ds.captions_per_image == 5 and ds.num_classes == 12
    assert ds.class_ids.tolist() == list(range(12))  # every image its own class
    assert ds.keys[0].startswith("SHAPES_train2014_") and (written["coco"] / "images" / f"{ds.keys[0]}.jpg").is_file()
    assert not (written["coco"] / "CUB_200_2011").exists()
    assert [tuple(im.shape) for im in ds[0]["images"]] == [(3, 16, 16), (3, 32, 32), (3, 64, 64)]


def test_items_depend_on_seed_epoch_index_only(written):
    cfg = small_cfg("cub", written["cub"])
    a, b = build_cub(cfg, "train", train=True, seed=3), build_cub(cfg, "train", train=True, seed=3)
    b[5]  # access order must not matter
    for i in (0, 7):
        x, y = a[i], b[i]
        assert torch.equal(x["caption"], y["caption"]) and x["length"] == y["length"]
        assert all(torch.equal(p, q) for p, q in zip(x["images"], y["images"]))
    a.set_epoch(1)
    b.set_epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(a[2]["images"], b[2]["images"]))

    def signature(ds, epoch):
        ds.set_epoch(epoch)
        return [(ds[i]["caption"].tolist(), ds[i]["images"][-1].sum().item()) for i in range(len(ds))]

    assert signature(a, 0) != signature(a, 1)  # crop, flip and caption choice change with the epoch
    assert signature(build_cub(cfg, "train", train=True, seed=4), 0) != signature(a, 0)
    e1 = build_cub(cfg, "test", train=False)
    e2 = build_cub(cfg, "test", train=False)
    e2.set_epoch(5)
    assert torch.equal(e1[1]["images"][-1], e2[1]["images"][-1])  # evaluation images: no randomness


# ---- vocabulary -------------------------------------------------------------------------------------------------
def test_captions_pickle_vocabulary_is_reused_unchanged(cub_copy):
    data = load_pickle(cub_copy / "captions.pickle")
    words = [data[2][i] for i in range(len(data[2]))]
    perm = [0] + list(np.random.default_rng(0).permutation(np.arange(1, len(words))))
    new_of_old = {old: new for new, old in enumerate(perm)}
    remap = [[[new_of_old[t] for t in cap] for cap in data[s]] for s in (0, 1)]
    dump_pickle([remap[0], remap[1], {i: words[o] for i, o in enumerate(perm)},
                 {words[o]: i for i, o in enumerate(perm)}], cub_copy / "captions.pickle")
    ds = build_cub(small_cfg("cub", cub_copy), "train", train=False)
    assert ds.vocab.ixtoword == [words[o] for o in perm]
    assert ds.captions(0) == remap[0][:10]
    shapes = ShapesDataset(small_cfg("shapes", None), "train", train=False)
    assert ds.caption_text(0, 0) == shapes.vocab.decode(shapes.captions(0)[0])  # same words, other ids


def test_vocabulary_built_from_text_into_the_cache(cub_copy, tmp_path):
    (cub_copy / "captions.pickle").unlink()
    root = tmp_path / "results"
    ds = build_cub(small_cfg("cub", cub_copy), "train", train=False, cache_root=root)
    assert not (cub_copy / "captions.pickle").exists()  # never written into the data directory
    [saved_path] = (root / ".cache" / "data-captions").glob("*/captions.pickle")
    saved = load_pickle(saved_path)
    assert saved[2][0] == "<end>" and len(saved[0]) == 12 * 10 and len(saved[1]) == 6 * 10
    first_caption = (cub_copy / "text" / f"{ds.keys[0]}.txt").read_text().splitlines()[0]
    assert ds.caption_text(0, 0) == first_caption
    assert ds.vocab.ixtoword[1:len(first_caption.split()) + 1][:1] == [first_caption.split()[0]]  # first-seen order
    again = build_cub(small_cfg("cub", cub_copy), "train", train=False, cache_root=root)
    assert again.vocab.ixtoword == ds.vocab.ixtoword


def test_nested_text_text_layout(cub_copy):
    (cub_copy / "captions.pickle").unlink()
    tmp = cub_copy / "text_tmp"
    (cub_copy / "text").rename(tmp)
    (cub_copy / "text").mkdir()
    tmp.rename(cub_copy / "text" / "text")
    assert len(build_cub(small_cfg("cub", cub_copy), "test", train=False)) == 6


# ---- bad data -----------------------------------------------------------------------------------------------------
def test_missing_directory_names_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected layout: DIR/CUB_200_2011/"):
        build_cub(small_cfg("cub", tmp_path / "nowhere"), "train", train=True)
    with pytest.raises(DataError, match="needs --data-dir"):
        build_cub(small_cfg("cub", None), "train", train=True)


@pytest.mark.parametrize("missing", ["train/class_info.pickle", "test/filenames.pickle",
                                     "CUB_200_2011/bounding_boxes.txt", "CUB_200_2011/images.txt"])
def test_missing_metadata_file_is_named(cub_copy, missing):
    (cub_copy / missing).unlink()
    with pytest.raises(DataError, match=f"missing {missing}"):
        build_cub(small_cfg("cub", cub_copy), "train", train=True)


def test_too_few_captions_names_the_file(cub_copy):
    (cub_copy / "captions.pickle").unlink()
    ds_keys = load_pickle(cub_copy / "train" / "filenames.pickle")
    bad = cub_copy / "text" / f"{ds_keys[4]}.txt"
    bad.write_text("one caption\n\nsecond caption\n")
    with pytest.raises(DataError, match=f"{bad}: 2 captions, 10 required"):
        build_cub(small_cfg("cub", cub_copy), "train", train=True)
    with pytest.raises(DataError, match="2 captions, 10 required"):
        check_dataset(small_cfg("cub", cub_copy), cub_copy.parent / "results")


def test_truncated_image_names_its_path(cub_copy, tmp_path):
    keys = load_pickle(cub_copy / "test" / "filenames.pickle")
    bad = cub_copy / "CUB_200_2011" / "images" / f"{keys[2]}.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    cfg = small_cfg("cub", cub_copy)
    with pytest.raises(DataError, match=f"truncated image {bad}"):
        check_dataset(cfg, tmp_path / "results")
    ds = build_cub(cfg, "test", train=False)  # metadata is fine: building works, the item fails clearly
    with pytest.raises(DataError, match=str(bad)):
        ds[2]
    (cub_copy / "CUB_200_2011" / "images" / f"{keys[3]}.jpg").unlink()
    problems = validate.find_problems(validate.CUB, cub_copy)
    assert len(problems) == 2 and any("missing image" in p for p in problems)


def test_validation_verdict_is_cached(cub_copy, tmp_path, monkeypatch):
    cfg, root = small_cfg("cub", cub_copy), tmp_path / "results"
    check_dataset(cfg, root)
    calls = []
    monkeypatch.setattr(validate, "open_image", lambda p: calls.append(p))
    check_dataset(cfg, root)  # same files, sizes, mtimes: no image decoded
    assert calls == []
    img = next((cub_copy / "CUB_200_2011" / "images").rglob("*.jpg"))
    os.utime(img, ns=(1, 1))
    check_dataset(cfg, root)  # the listing changed: validated again
    assert len(calls) == 18
    check_dataset(small_cfg("shapes", None), root)  # generated: passes trivially


# ---- the command line ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["cub", "coco"])
def test_write_then_inspect_reports_the_writer_counts(layout, tmp_path, capsys):
    out = tmp_path / "data"
    plugins = data_plugins()
    assert main(["datasets", "write", "shapes", str(out), "--layout", layout]
                + [a for o in SMALL for a in ("--set", o)], plugins=plugins) == 0
    assert capsys.readouterr().out.strip() == str(out)
    rc = main(["datasets", "inspect", layout, "--data-dir", str(out), "--json", "--results-dir",
               str(tmp_path / "res")], plugins=plugins)
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["problems"] == []
    shapes = {s: ShapesDataset(small_cfg("shapes", None), s, train=False) for s in ("train", "test")}
    classes = len(set(shapes["train"].class_ids.tolist()) | set(shapes["test"].class_ids.tolist()))
    assert report["train_images"] == 12 and report["test_images"] == 6
    assert report["classes"] == (classes if layout == "cub" else 18)
    assert report["vocab_size"] == len(shapes["train"].vocab)
    assert report["captions_per_image"] == (10 if layout == "cub" else 5)
    assert Path(report["sample_sheet"]).is_file()


def test_inspect_reports_every_problem(cub_copy, tmp_path, capsys):
    (cub_copy / "test" / "class_info.pickle").unlink()
    keys = load_pickle(cub_copy / "train" / "filenames.pickle")
    (cub_copy / "CUB_200_2011" / "images" / f"{keys[0]}.jpg").write_bytes(b"not a jpeg")
    rc = main(["datasets", "inspect", "cub", "--data-dir", str(cub_copy), "--results-dir", str(tmp_path / "r")],
              plugins=data_plugins())
    out = capsys.readouterr().out
    assert rc == 1 and "problems   2" in out and "test/class_info.pickle" in out and keys[0] in out


def test_write_refuses_non_empty_directory_and_file_data_sets(tmp_path, written):
    with pytest.raises(Exception, match="not empty"):
        write_dataset(data_plugins(), "shapes", written["cub"], layout="cub", overrides=[])
    with pytest.raises(Exception, match="only generated"):
        write_dataset(data_plugins(), "cub", tmp_path / "x", layout="cub", overrides=[])
