"""Issue 17 fix: the manifest's ``caption`` of a data set in the AttnGAN layout (cub, coco) is the raw line of
``text/<key>.txt`` the caption came from (capitals and punctuation kept), not its tokens joined by spaces, and
``caption_index`` counts the captions the loader keeps (empty ones left out), as R-precision's caption bank does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data.cub import build_cub
from harness.data.safe_pickle import dump_pickle, load_pickle
from harness.data.vocab import tokenize
from harness.util.errors import DataError
from harness.evaluation.evaluate import build_caption_bank
from harness.evaluation.manifest import read_manifest, schedule_rows, write_manifest
from data_fixtures import small_cfg

IMAGE = 2  # the test image whose text file is rewritten


def _styled(line: str, n: int) -> str:
    """A written caption with capitals and punctuation (the same words, so the same tokens)."""
    words = line.split()
    return f"{words[0].capitalize()} {' '.join(words[1:])}{'!' if n % 2 else '.'}  "


def _rewrite(cub: Path, junk_first: bool) -> tuple[str, list[str]]:
    """Restyle the text file of test image IMAGE; with ``junk_first``, put before its captions an empty line, a
    punctuation-only line (neither is read as a caption) and a line of non-ASCII words only (read as a caption
    whose words all drop: empty, so left out). Returns (key, the styled lines in file order)."""
    key = load_pickle(cub / "test" / "filenames.pickle")[IMAGE]
    path = cub / "text" / f"{key}.txt"
    styled = [_styled(ln, n) for n, ln in enumerate(path.read_text().splitlines())]
    junk = ["", "--- ...", "日本語 ßéü"] if junk_first else []
    path.write_text("\n".join(junk + styled) + "\n", encoding="utf-8")
    return key, styled


def _manifest(ds, tmp_path: Path):
    """Every caption of the split, in bank order, through the manifest writer and reader."""
    bank = build_caption_bank(ds, 18, 0)
    images = np.repeat(np.arange(len(ds)), bank.index.counts)
    rows = schedule_rows(ds, bank, images, np.arange(len(images)))
    return read_manifest(write_manifest(tmp_path / "manifest.csv", rows))


def test_caption_is_the_raw_line_after_an_empty_caption_was_left_out(cub, tmp_path):
    (cub / "captions.pickle").unlink()  # the vocabulary is built from text/
    key, styled = _rewrite(cub, junk_first=True)
    ds = build_cub(small_cfg("cub", cub), "test", train=False, cache_root=tmp_path / "r")
    assert len(ds.captions(IMAGE)) == 9  # the non-ASCII line took a slot of ten and was left out
    assert any(f"{key!r} caption 0 is empty" in d for d in ds.layout.dropped)
    rows = [r for r in _manifest(ds, tmp_path) if r.image_key == key]
    assert [r.caption_index for r in rows] == list(range(9))
    assert [r.caption for r in rows] == [s.strip() for s in styled[:9]]  # not the tenth: the builder read 10 lines
    assert rows[0].caption[0].isupper() and rows[0].caption.endswith(".") and rows[1].caption.endswith("!")
    for r in rows:  # the tokens of the same caption
        assert r.caption_tokens == " ".join(tokenize(r.caption)) == ds.caption_text(IMAGE, r.caption_index)


def test_caption_pickle_index_skips_its_empty_caption(cub, tmp_path):
    key, styled = _rewrite(cub, junk_first=False)
    data = load_pickle(cub / "captions.pickle")
    data[1][IMAGE * 10 + 0] = []  # stored caption 0 of the image is empty: left out
    dump_pickle(data, cub / "captions.pickle")
    ds = build_cub(small_cfg("cub", cub), "test", train=False)
    rows = [r for r in _manifest(ds, tmp_path) if r.image_key == key]
    assert [r.caption for r in rows] == [s.strip() for s in styled[1:]]
    other = [r for r in _manifest(ds, tmp_path) if r.image_key == ds.keys[0]]
    raw = (cub / "text" / f"{ds.keys[0]}.txt").read_text().splitlines()
    assert [r.caption for r in other] == raw  # an image with nothing dropped: line j is caption j


def test_missing_text_file_is_named_in_one_line(cub, tmp_path):
    key = load_pickle(cub / "test" / "filenames.pickle")[IMAGE]
    (cub / "text" / f"{key}.txt").unlink()
    ds = build_cub(small_cfg("cub", cub), "test", train=False)  # captions.pickle: text/ is not needed to load
    with pytest.raises(DataError, match="no caption file") as e:
        _manifest(ds, tmp_path)
    assert str(cub / "text" / f"{key}.txt") in str(e.value) and "\n" not in str(e.value)
