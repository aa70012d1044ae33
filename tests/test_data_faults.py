"""Faults of real data directories (issue 13, items 1 and 10): empty captions in a captions.pickle, a vocabulary
built from text/ (into the cache, never into the data directory), a captions.pickle older than text/, and the
shared DAMSM key telling two vocabularies of the same size apart."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import Config
from harness.data.cub import build_cub
from harness.data.safe_pickle import dump_pickle, load_pickle
from harness.data.validate import check_dataset
from harness.data.vocab import Vocabulary
from harness.util.errors import DataError
from harness.train.pretrain import damsm_key
from data_fixtures import data_plugins, small_cfg


def _empty_captions(cub: Path, split: str, image: int, which: list[int]) -> list:
    """Replace captions ``which`` of image ``image`` of ``split`` by [] in captions.pickle; returns the original."""
    data = load_pickle(cub / "captions.pickle")
    original = [list(c) for c in data[0 if split == "train" else 1]]
    flat = data[0 if split == "train" else 1]
    for j in which:
        flat[image * 10 + j] = []
    dump_pickle(data, cub / "captions.pickle")
    return original


def _inspect(cub: Path, root: Path, capsys) -> tuple[int, dict]:
    rc = main(["datasets", "inspect", "cub", "--data-dir", str(cub), "--json", "--results-dir", str(root)],
              plugins=data_plugins())
    return rc, json.loads(capsys.readouterr().out)


# ---- empty captions -----------------------------------------------------------------------------------------
def test_empty_captions_are_left_out_and_listed(cub, tmp_path, capsys):
    original = _empty_captions(cub, "test", 2, [0, 4, 9])
    ds = build_cub(small_cfg("cub", cub), "test", train=False)
    assert ds.captions(2) == [original[20 + j] for j in range(10) if j not in (0, 4, 9)]
    assert all(len(c) > 0 for i in range(len(ds)) for c in ds.captions(i))
    assert ds.captions_per_image == 10  # the other images keep all ten
    key = ds.keys[2]
    rc, report = _inspect(cub, tmp_path / "r", capsys)
    assert rc == 0 and report["problems"] == []
    assert report["caption_length"]["min"] >= 1
    assert report["warnings"] == [f"{cub / 'captions.pickle'}: test image {key!r} caption {j} is empty (left out)"
                                  for j in (0, 4, 9)]
    main(["datasets", "inspect", "cub", "--data-dir", str(cub), "--results-dir", str(tmp_path / "r")],
         plugins=data_plugins())
    text = capsys.readouterr().out
    assert "warnings   3" in text and "caption 4 is empty" in text


def test_training_start_warns_about_empty_captions(cub, tmp_path, capsys):
    _empty_captions(cub, "train", 0, [3])
    check_dataset(small_cfg("cub", cub), tmp_path / "r")  # usable: no error
    err = capsys.readouterr().err
    assert "caption 3 is empty (left out)" in err and "datasets inspect cub" in err


@pytest.mark.parametrize("verb", ["train", "run"])
def test_a_command_warns_about_its_data_once(verb, cub, results_root, capsys):
    _empty_captions(cub, "train", 0, [3])
    assert main([verb, "--plugins", "attngan", "--dataset", "cub", "--data-dir", str(cub), "--preset", "test",
                 "--no-eval"] if verb == "run" else
                ["train", "--plugins", "attngan", "--dataset", "cub", "--data-dir", str(cub), "--preset", "test"]) == 0
    assert capsys.readouterr().err.count("caption 3 is empty (left out)") == 1  # not again when training starts


def test_image_without_any_caption_is_refused_in_one_line(cub, tmp_path, capsys):
    _empty_captions(cub, "train", 5, list(range(10)))
    key = load_pickle(cub / "train" / "filenames.pickle")[5]
    with pytest.raises(DataError, match=rf"train image '{key}' has no caption left: all 10") as e:
        build_cub(small_cfg("cub", cub), "test", train=False)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="has no caption left"):
        check_dataset(small_cfg("cub", cub), tmp_path / "r")
    rc, report = _inspect(cub, tmp_path / "r2", capsys)
    assert rc == 1 and any("has no caption left" in p for p in report["problems"])


# ---- the vocabulary built from text/ ------------------------------------------------------------------------
def test_text_edits_count_and_the_data_directory_is_never_written(cub, tmp_path, capsys):
    (cub / "captions.pickle").unlink()
    root = tmp_path / "results"
    before = sorted(p.relative_to(cub) for p in cub.rglob("*"))
    cfg = small_cfg("cub", cub)
    check_dataset(cfg, root)
    rc, _ = _inspect(cub, root, capsys)
    ds = build_cub(cfg, "train", train=False, cache_root=root)
    assert rc == 0 and sorted(p.relative_to(cub) for p in cub.rglob("*")) == before
    assert "zebra" not in ds.vocab.wordtoix
    text = cub / "text" / f"{ds.keys[0]}.txt"
    lines = text.read_text().splitlines()
    text.write_text("\n".join(["a zebra striped bird"] + lines[1:]) + "\n")
    edited = build_cub(cfg, "train", train=False, cache_root=root)
    assert edited.caption_text(0, 0) == "a zebra striped bird"  # the edit is seen, not hidden by a stale file
    assert len(list((root / ".cache" / "data-captions").glob("*/captions.pickle"))) == 2


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``directory``: (size, modification time in ns)."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def test_read_only_data_directory(cub, tmp_path):
    """A read-only data directory works, and nothing in it is created or touched (checked on the files
    themselves too: root ignores the permission bits)."""
    (cub / "captions.pickle").unlink()
    before = _snapshot(cub)
    os.chmod(cub, 0o555)
    try:
        ds = build_cub(small_cfg("cub", cub), "train", train=False, cache_root=tmp_path / "r")
        check_dataset(small_cfg("cub", cub), tmp_path / "r")
    finally:
        os.chmod(cub, 0o755)
    assert len(ds) == 12 and not (cub / "captions.pickle").exists()
    assert _snapshot(cub) == before


def test_inspect_warns_when_text_is_newer_than_captions_pickle(cub, tmp_path, capsys):
    rc, report = _inspect(cub, tmp_path / "r", capsys)
    assert report["warnings"] == []
    made = (cub / "captions.pickle").stat().st_mtime_ns
    edited = next((cub / "text").rglob("*.txt"))
    os.utime(edited, ns=(made + 10**9, made + 10**9))
    rc, report = _inspect(cub, tmp_path / "r", capsys)
    [warning] = report["warnings"]
    assert rc == 0 and "captions.pickle is older than 1 caption file(s)" in warning
    assert str(edited.relative_to(cub)) in warning


# ---- the shared DAMSM key ------------------------------------------------------------------------------------
def test_damsm_key_tells_equal_sized_vocabularies_apart():
    a = Vocabulary.from_words(["red", "bird", "small"])
    b = Vocabulary.from_words(["bird", "red", "small"])  # same size, same words, other ids
    c = Vocabulary.from_words(["red", "bird", "tiny"])
    cfg = Config()
    keys = [damsm_key(cfg, len(v), v.fingerprint()) for v in (a, b, c)]
    assert len(a) == len(b) == len(c) and keys[0] != keys[1] and keys[0] != keys[2] and keys[1] != keys[2]
    assert damsm_key(cfg, len(a), Vocabulary(list(a.ixtoword)).fingerprint()) == keys[0]


def test_a_refused_data_set_leaves_no_run_or_session_directory(cub, tmp_path, capsys):
    """`harness train` and `harness run` check the data set before they create a run or a session directory."""
    from harness.contract.plugins import build_plugins

    _empty_captions(cub, "train", 5, list(range(10)))
    root = tmp_path / "results"
    for verb in (["train", "--plugins", "attngan"], ["run", "--plugins", "attngan,dmgan", "--no-eval"]):
        rc = main(verb + ["--dataset", "cub", "--data-dir", str(cub), "--preset", "test", "--results-dir", str(root)],
                  plugins=build_plugins())
        err = capsys.readouterr().err
        assert rc == 2 and "has no caption left" in err and len(err.strip().splitlines()) == 1, err
        assert not root.exists() or [p.name for p in root.iterdir() if not p.name.startswith(".")] == []


def test_inspect_lists_empty_captions_built_from_text(cub, tmp_path, capsys):
    """Without captions.pickle the captions come from text/; a line whose words all drop (non-ASCII only) is an
    empty caption, left out, and `datasets inspect` lists it as it does for captions.pickle."""
    (cub / "captions.pickle").unlink()
    key = load_pickle(cub / "test" / "filenames.pickle")[1]
    text = cub / "text" / f"{key}.txt"
    lines = text.read_text().splitlines()
    text.write_text("\n".join(lines[:2] + ["日本語の説明だけ"] + lines[3:]) + "\n", encoding="utf-8")
    rc, report = _inspect(cub, tmp_path / "r", capsys)
    assert rc == 0 and report["problems"] == []
    assert report["warnings"] == [f"{text} line 3: 日本語の説明だけ (read as '': non-ASCII letters dropped)",
                                  f"{cub / 'text'}: test image {key!r} caption 2 is empty (left out)"]
    ds = build_cub(small_cfg("cub", cub), "test", train=False, cache_root=tmp_path / "r")
    assert len(ds.captions(1)) == 9 and all(len(c) > 0 for c in ds.captions(1))


def test_inspect_warns_about_caption_words_read_with_letters_lost(cub, tmp_path, capsys):
    """Bytes that are not UTF-8 split a word (r\\xe9d → r, d) and non-ASCII letters are dropped (réd → rd): the
    tokenisation stays the reference's, and `datasets inspect` names file, line and each word as written and read."""
    (cub / "captions.pickle").unlink()
    key = load_pickle(cub / "test" / "filenames.pickle")[2]
    text = cub / "text" / f"{key}.txt"
    lines = text.read_bytes().split(b"\n")
    lines[1] = b"a small bird, r\xe9d and grey"  # Latin-1 bytes
    lines[4] = "its crown is réd and its belly café-coloured".encode("utf-8")
    text.write_bytes(b"\n".join([b""] + lines))  # a blank first line: file lines are caption positions + 2
    rc, report = _inspect(cub, tmp_path / "r", capsys)
    assert rc == 0 and report["problems"] == []
    assert report["warnings"] == [
        f"{text} line 3: r\\xe9d (read as 'r d': bytes not UTF-8)",
        f"{text} line 6: réd (read as 'rd': non-ASCII letters dropped), café-coloured (read as 'caf coloured': "
        "non-ASCII letters dropped)"]
    ds = build_cub(small_cfg("cub", cub), "test", train=False, cache_root=tmp_path / "r")
    read = [ds.vocab.decode(c) for c in ds.captions(2)]
    assert read[1] == "a small bird r d and grey" and read[4] == "its crown is rd and its belly caf coloured"
    main(["datasets", "inspect", "cub", "--data-dir", str(cub), "--results-dir", str(tmp_path / "r")],
         plugins=data_plugins())
    out = capsys.readouterr().out
    assert "warnings   2" in out and "line 6: réd (read as 'rd'" in out and "problems   none" in out


# ---- a batch larger than the training split ------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["train", "run"])
def test_a_batch_larger_than_the_cub_training_split_is_refused_before_any_directory(verb, cub, results_root,
                                                                                   capsys):
    # the fixture's training split has 12 images: a batch of 13 can never be formed (whole batches only)
    rc = main([verb, "--plugins", "attngan", "--dataset", "cub", "--data-dir", str(cub), "--preset", "test",
               "--set", "train.batch_size=13"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == (f"harness: error: train.batch_size=13 is not allowed; the training split of cub in {cub} has 12 "
                       f"images, fewer than one batch")
    made = [p.name for p in results_root.iterdir() if not p.name.startswith(".")] if results_root.exists() else []
    assert made == []  # no run or session directory (the cache of the data check may exist)


def test_a_batch_the_cub_training_split_holds_passes_the_check(cub, tmp_path):
    check_dataset(small_cfg("cub", cub), tmp_path / "r", batch_size=12)  # exactly one batch: allowed
