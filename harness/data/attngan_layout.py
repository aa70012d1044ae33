"""Reading a data set in the AttnGAN / DM-GAN directory layout (``code/datasets.py``), shared by ``cub`` and ``coco``.

    DIR/<image root>/<key>.jpg                 CUB: CUB_200_2011/images/, COCO: images/
    DIR/CUB_200_2011/images.txt                CUB only: "<id> <relpath>"
    DIR/CUB_200_2011/bounding_boxes.txt        CUB only: "<id> <x> <y> <w> <h>", matched to images.txt by row
    DIR/{train,test}/filenames.pickle          list of keys (no .jpg)
    DIR/{train,test}/class_info.pickle         CUB only: class id per key
    DIR/text/<key>.txt (or DIR/text/text/)     captions, one per line
    DIR/captions.pickle                        optional: [train_captions, test_captions, ixtoword, wordtoix]

Every pickle is read with the restricted unpickler. When ``captions.pickle`` is present its vocabulary and
token ids are used unchanged; otherwise they are built from the text files with the reference tokenisation
and saved in the cache (``<root>/.cache/data-captions/<key>/captions.pickle``, the key a hash of the text
files' content), never in DIR: an edit to ``text/`` gives a new entry. Empty captions (no token, which AttnGAN's
own builder keeps when every word was dropped) are left out; an image with no caption left is refused.

Caption ``j`` of an image counts the captions the loader keeps (empty ones left out). ``LayoutData.positions``
records where each kept caption stood among the captions the builder read (``counted_lines``: the first
``captions_per_image`` lines of ``text/<key>.txt`` holding a word), so ``AttnGanDataset.raw_caption`` can give
the raw line a caption came from (the manifest's ``caption`` column), reading ``text/`` only then.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from PIL import Image

from harness.data.dataset import TextImageDataset
from harness.data.image_file import read_rgb8
from harness.data.safe_pickle import dump_pickle, load_pickle
from harness.data.transforms import StageTransform, bbox_crop_box, resize_shorter
from harness.data.vocab import ReadWord, Vocabulary, tokenize
from harness.util.errors import DataError, HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.config import DataConfig

SPLITS = ("train", "test")


@dataclass(frozen=True)
class LayoutSpec:
    """What distinguishes one AttnGAN-layout data set from another."""

    name: str
    image_root: str  # relative to DIR
    has_bbox: bool
    has_class_info: bool
    captions_per_image: int
    layout: str  # one line, printed in errors

    def missing(self, data_dir: Path, what: str) -> DataError:
        return DataError(f"{self.name}: missing {what} in {data_dir}; expected layout: {self.layout}; "
                         f"{self.fetch_hint(data_dir)}")

    def fetch_hint(self, data_dir: Optional[Path | str] = None) -> str:
        """The command that downloads and unpacks this layout."""
        return f"`harness fetch {self.name} --data-dir {data_dir or 'DIR'}` downloads it"


@dataclass
class LayoutData:
    """Everything read from the metadata of both splits (the vocabulary spans both)."""

    spec: LayoutSpec
    data_dir: Path
    keys: dict[str, list[str]]
    class_ids: dict[str, np.ndarray]
    captions: dict[str, list[list[list[int]]]]  # split -> image -> caption -> ids
    vocab: Vocabulary
    bboxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    captions_source: str = ""
    dropped: list[str] = field(default_factory=list)  # one line per empty caption left out
    # split -> image -> kept caption -> its 0-based position among the captions the builder read
    positions: dict[str, list[list[int]]] = field(default_factory=dict)

    def image_path(self, key: str) -> Path:
        return self.data_dir / self.spec.image_root / f"{key}.jpg"

    def caption_file(self, key: str) -> Path:
        """``text/<key>.txt`` (or ``text/text/<key>.txt``, see ``text_root``) of image ``key``."""
        return keys_text_root(self.data_dir, self.keys) / f"{key}.txt"


# ----------------------------------------------------------------------------------------------------------
# Metadata readers (each raises DataError naming the file)
# ----------------------------------------------------------------------------------------------------------
def check_data_dir(spec: LayoutSpec, data_dir: Optional[str | Path]) -> Path:
    if data_dir is None:
        raise DataError(f"{spec.name} needs --data-dir (or data.data_dir); expected layout: {spec.layout}; "
                        f"{spec.fetch_hint()}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"{spec.name} data directory {path} does not exist; expected layout: {spec.layout}; "
                        f"{spec.fetch_hint(path)}")
    return path


def read_filenames(spec: LayoutSpec, data_dir: Path, split: str) -> list[str]:
    path = data_dir / split / "filenames.pickle"
    if not path.is_file():
        raise spec.missing(data_dir, f"{split}/filenames.pickle")
    names = load_pickle(path)
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"{path}: expected a list of image keys, got {type(names).__name__}")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def read_class_info(spec: LayoutSpec, data_dir: Path, split: str, n: int) -> np.ndarray:
    path = data_dir / split / "class_info.pickle"
    if not spec.has_class_info:
        return np.arange(n, dtype=np.int64)  # every image its own class (reference: no class_info)
    if not path.is_file():
        raise spec.missing(data_dir, f"{split}/class_info.pickle")
    try:
        ids = np.asarray(load_pickle(path), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected a list of integer class ids") from None
    if len(ids) != n:
        raise DataError(f"{path}: {len(ids)} class ids for {n} keys in {split}/filenames.pickle")
    return ids


def read_bboxes(spec: LayoutSpec, data_dir: Path) -> dict[str, tuple[int, int, int, int]]:
    """key -> (x, y, w, h) as ints (the reference reads them with pandas ``.astype(int)``: truncation)."""
    root = data_dir / "CUB_200_2011"
    files = root / "images.txt", root / "bounding_boxes.txt"
    for f in files:
        if not f.is_file():
            raise spec.missing(data_dir, str(f.relative_to(data_dir)))
    names = [ln.split() for ln in files[0].read_text().splitlines() if ln.strip()]
    boxes = [ln.split() for ln in files[1].read_text().splitlines() if ln.strip()]
    if len(names) != len(boxes):
        raise DataError(f"{files[1]}: {len(boxes)} rows but images.txt has {len(names)} (matched by row order)")
    out = {}
    for row, (n, b) in enumerate(zip(names, boxes), 1):
        if len(n) != 2 or len(b) != 5:
            bad = files[0] if len(n) != 2 else files[1]
            raise DataError(f"{bad}: malformed row {row}")
        try:
            out[n[1][:-4]] = tuple(int(float(v)) for v in b[1:])
        except ValueError:
            raise DataError(f"{files[1]}: malformed row {row}") from None
    return out


def keys_text_root(data_dir: Path, keys: dict[str, list[str]]) -> Path:
    """``text_root`` judged by the first key of the splits (train, then test)."""
    return text_root(data_dir, next((k for s in SPLITS for k in keys[s]), None))


def text_root(data_dir: Path, first_key: Optional[str] = None) -> Path:
    """``DIR/text``, or ``DIR/text/text`` in re-hosted copies that nest it."""
    nested = data_dir / "text" / "text"
    if nested.is_dir():
        if first_key is None or (nested / f"{first_key}.txt").is_file() \
                or not (data_dir / "text" / f"{first_key}.txt").is_file():
            return nested
    return data_dir / "text"


_ANY_WORD = re.compile(r"\w")


def numbered_lines(path: Path, limit: Optional[int] = None) -> list[tuple[int, bytes, str]]:
    """(line number from 1, bytes, text) of the lines of caption file ``path`` that AttnGAN's builder reads as
    captions, in file order, at most ``limit``: the lines holding a word character (``\\w``, before the reduction
    to ASCII, so a line whose words are all non-ASCII counts and gives an empty caption). Lines are split at
    "\\n" and decoded as UTF-8 (bad bytes replaced; a multi-byte character never holds the byte of "\\n", so
    line by line decodes as the whole file would); surrounding whitespace (a "\\r" of CRLF files) is removed from
    the text. Raises DataError naming the file when it cannot be read (a missing one included)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read caption file {path}: {e.strerror or e}") from None
    lines = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if limit is not None and len(lines) == limit:
            break
        text = line.decode("utf-8", errors="replace")
        if _ANY_WORD.search(text):
            lines.append((n, line, text.strip()))
    return lines


def counted_lines(path: Path, limit: Optional[int] = None) -> list[str]:
    """The text of the caption lines ``numbered_lines`` finds."""
    return [text for _, _, text in numbered_lines(path, limit)]


def caption_reading_notes(path: Path, captions_per_image: int) -> list[str]:
    """One line per caption of text file ``path`` (those the builder reads) with words the tokeniser reads with
    letters lost: bytes that are not UTF-8 (which split a word: ``r\\xe9d`` is read as ``r d``) or non-ASCII
    letters (dropped: ``réd`` is read as ``rd``); file, line number, each word as written and as read."""
    notes = []
    for n, line, _ in numbered_lines(path, captions_per_image):
        words = [ReadWord(w.decode("utf-8", "surrogateescape"), tuple(tokenize(w.decode("utf-8", "replace"))))
                 for w in line.split()]
        lost = [w.shown() for w in words if w.loss is not None]
        if lost:
            notes.append(f"{path} line {n}: {', '.join(lost)}")
    return notes


def read_caption_file(path: Path, captions_per_image: int) -> list[list[str]]:
    """The tokens of the first ``captions_per_image`` captions of one text file (``counted_lines``, the
    reference rule; a caption may be empty when all its words dropped)."""
    lines = counted_lines(path, captions_per_image)
    if len(lines) < captions_per_image:
        raise DataError(f"{path}: {len(lines)} captions, {captions_per_image} required")
    return [tokenize(line) for line in lines]


def read_text_captions(spec: LayoutSpec, data_dir: Path, keys: dict[str, list[str]],
                       captions_per_image: int) -> dict[str, list[list[list[str]]]]:
    root = keys_text_root(data_dir, keys)
    out: dict[str, list[list[list[str]]]] = {}
    for split in SPLITS:
        caps = []
        for key in keys[split]:
            path = root / f"{key}.txt"
            if not path.is_file():
                raise spec.missing(data_dir, f"caption file {path.relative_to(data_dir)}")
            caps.append(read_caption_file(path, captions_per_image))
        out[split] = caps
    return out


def build_vocabulary(token_captions: dict[str, list[list[list[str]]]]) -> Vocabulary:
    """The reference ``build_dictionary``: every word of train then test captions, in first-seen order."""
    return Vocabulary.from_words(w for s in SPLITS for img in token_captions[s] for cap in img for w in cap)


def reference_captions_pickle(vocab: Vocabulary, flat: dict[str, list[list[int]]]) -> list[Any]:
    """``[train_captions, test_captions, ixtoword (dict), wordtoix]`` as the reference writes it."""
    return [flat["train"], flat["test"], dict(enumerate(vocab.ixtoword)), dict(vocab.wordtoix)]


def _group(flat: list, n_images: int, per: int, source: Path, split: str) -> list[list[list[int]]]:
    if len(flat) != n_images * per:
        raise DataError(f"{source}: {len(flat)} {split} captions for {n_images} images × {per} captions per image")
    out = []
    for i in range(n_images):
        img = []
        for cap in flat[i * per:(i + 1) * per]:
            try:
                img.append([int(t) for t in cap])
            except (TypeError, ValueError):
                raise DataError(f"{source}: {split} caption {i * per} is not a list of token ids") from None
        out.append(img)
    return out


def read_captions_pickle(path: Path, keys: dict[str, list[str]], per: int,
                         drop_empty: bool = True) -> tuple[Vocabulary, dict[str, list], list[str]]:
    """``(vocabulary, split -> image -> caption -> ids, dropped)`` of a reference ``captions.pickle``; empty
    captions are left out and listed in ``dropped`` (see ``drop_empty_captions``) unless ``drop_empty`` is
    False (then kept, and ``dropped`` is empty). Raises DataError."""
    data = load_pickle(path)
    if not isinstance(data, (list, tuple)) or len(data) != 4:
        raise DataError(f"{path}: expected [train_captions, test_captions, ixtoword, wordtoix]")
    train, test, ixtoword, wordtoix = data
    if not isinstance(wordtoix, dict) or not isinstance(ixtoword, (dict, list, tuple)):
        raise DataError(f"{path}: ixtoword / wordtoix are not a dict")
    vocab = Vocabulary.from_reference(ixtoword, wordtoix, source=str(path))
    caps = {"train": _group(list(train), len(keys["train"]), per, path, "train"),
            "test": _group(list(test), len(keys["test"]), per, path, "test")}
    n = len(vocab)
    for split, imgs in caps.items():
        for img in imgs:
            for cap in img:
                if any(t < 0 or t >= n for t in cap):
                    raise DataError(f"{path}: a {split} caption has a token id outside the {n}-word vocabulary")
    return vocab, caps, drop_empty_captions(caps, keys, path) if drop_empty else []


def empty_captions(captions: dict[str, list[list[list[int]]]], keys: dict[str, list[str]],
                   source: Path | str) -> tuple[list[str], list[str]]:
    """``(dropped, refused)``: one line per empty caption (no token) of an image that keeps others (file, split,
    image key, caption index as stored), and one line per image whose captions are all empty."""
    dropped, refused = [], []
    for split in SPLITS:
        for key, img in zip(keys[split], captions[split]):
            empty = [j for j, cap in enumerate(img) if len(cap) == 0]
            if empty and len(empty) == len(img):
                refused.append(f"{source}: {split} image {key!r} has no caption left: all {len(img)} of its "
                               f"captions are empty (no word); give it captions or remove it from "
                               f"{split}/filenames.pickle")
            else:
                dropped += [f"{source}: {split} image {key!r} caption {j} is empty (left out)" for j in empty]
    return dropped, refused


def drop_empty_captions(captions: dict[str, list[list[list[int]]]], keys: dict[str, list[str]],
                        source: Path | str) -> list[str]:
    """Remove the empty captions of every image, in place; returns ``empty_captions``'s lines of the captions
    removed. Raises DataError (the first image, and how many more) when an image has no caption left."""
    dropped, refused = empty_captions(captions, keys, source)
    if refused:
        more = f" (and {len(refused) - 1} more such images)" if len(refused) > 1 else ""
        raise DataError(refused[0] + more)
    for split in SPLITS:
        captions[split] = [[cap for cap in img if len(cap) > 0] for img in captions[split]]
    return dropped


def text_files_hash(spec: LayoutSpec, data_dir: Path, keys: dict[str, list[str]], per: int) -> str:
    """sha256 over the key lists, ``per`` and the bytes of every caption file: the cache key of the vocabulary
    built from ``text/``. Raises DataError naming the first missing caption file."""
    root = keys_text_root(data_dir, keys)
    h = hashlib.sha256(f"captions_per_image={per}\n".encode())
    for split in SPLITS:
        h.update(f"[{split}]\n".encode())
        for key in keys[split]:
            path = root / f"{key}.txt"
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise spec.missing(data_dir, f"caption file {path.relative_to(data_dir)}") from None
            except OSError as e:
                raise DataError(f"cannot read caption file {path}: {e.strerror or e}") from None
            h.update(f"{key}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def stale_captions_pickle(data_dir: Path) -> Optional[str]:
    """A warning when ``DIR/captions.pickle`` is older than some ``text/`` file (its ids hide the edit), else None."""
    pickle_path = data_dir / "captions.pickle"
    text = data_dir / "text"
    if not pickle_path.is_file() or not text.is_dir():
        return None
    made = pickle_path.stat().st_mtime_ns
    newer = sorted(p for p in text.rglob("*.txt") if p.stat().st_mtime_ns > made)
    if not newer:
        return None
    return (f"{pickle_path} is older than {len(newer)} caption file(s) under text/ (e.g. "
            f"{newer[0].relative_to(data_dir)}): its vocabulary and token ids are used and text/ is not read; "
            f"delete or replace it if the edit to text/ should count")


def build_text_captions(spec: LayoutSpec, data_dir: Path, keys: dict[str, list[str]], per: int,
                        cache_root: Optional[Path]) -> tuple[Vocabulary, dict[str, list], str]:
    """The vocabulary and token ids built from ``text/`` (reference rules), kept in the cache entry of the text
    files' content when ``cache_root`` is given; never written into ``data_dir``. Returns (vocab, ids, source)."""
    def build() -> tuple[Vocabulary, dict[str, list]]:
        tokens = read_text_captions(spec, data_dir, keys, per)
        vocab = build_vocabulary(tokens)
        return vocab, {s: [[vocab.encode_known(c) for c in img] for img in tokens[s]] for s in SPLITS}

    if cache_root is None:
        vocab, captions = build()
        return vocab, captions, "text/ (built in memory: no results root given)"
    from harness.core.cache import cached

    def write(tmp: Path) -> None:
        vocab, captions = build()
        flat = {s: [c for img in captions[s] for c in img] for s in SPLITS}
        dump_pickle(reference_captions_pickle(vocab, flat), tmp / "captions.pickle")

    description = {"text_sha256": text_files_hash(spec, data_dir, keys, per), "captions_per_image": per,
                   "lines": "word-character lines, empty captions kept"}
    path = cached(Path(cache_root), "data-captions", description, write) / "captions.pickle"
    vocab, captions, _ = read_captions_pickle(path, keys, per, drop_empty=False)
    return vocab, captions, f"{path} (built from text/)"


# ----------------------------------------------------------------------------------------------------------
# Reading everything
# ----------------------------------------------------------------------------------------------------------
def read_layout(spec: LayoutSpec, data_dir: Optional[str | Path], *, captions_per_image: Optional[int] = None,
                cache_root: Optional[Path] = None) -> LayoutData:
    """Read and check the metadata of both splits; raises DataError on the first problem.

    ``cache_root``: the results root whose cache holds the vocabulary built from ``text/`` when the data
    directory has no ``captions.pickle`` (nothing is ever written into the data directory)."""
    per = captions_per_image or spec.captions_per_image
    ddir = check_data_dir(spec, data_dir)
    if not (ddir / spec.image_root).is_dir():
        raise spec.missing(ddir, f"{spec.image_root}/")
    keys = {s: read_filenames(spec, ddir, s) for s in SPLITS}
    class_ids = {s: read_class_info(spec, ddir, s, len(keys[s])) for s in SPLITS}
    bboxes = read_bboxes(spec, ddir) if spec.has_bbox else {}
    if spec.has_bbox:
        for s in SPLITS:
            for k in keys[s]:
                if k not in bboxes:
                    raise DataError(f"{s}/filenames.pickle: key {k!r} is not in CUB_200_2011/images.txt")
    pickle_path = ddir / "captions.pickle"
    if pickle_path.is_file():
        vocab, captions, _ = read_captions_pickle(pickle_path, keys, per, drop_empty=False)
        source = str(pickle_path)
    else:
        vocab, captions, source = build_text_captions(spec, ddir, keys, per, cache_root)
    positions = {s: [[j for j, cap in enumerate(img) if len(cap) > 0] for img in captions[s]] for s in SPLITS}
    dropped = drop_empty_captions(captions, keys, source)
    return LayoutData(spec, ddir, keys, class_ids, captions, vocab, bboxes, source, dropped, positions)


# ----------------------------------------------------------------------------------------------------------
# The data set
# ----------------------------------------------------------------------------------------------------------
def open_image(path: Path) -> Image.Image:
    """Decode an image fully (so a truncated file fails here), as 8-bit RGB; DataError names the path."""
    try:
        return read_rgb8(path)
    except FileNotFoundError:
        raise DataError(f"image file missing: {path}") from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"unreadable or truncated image {path}: {e}") from None


class AttnGanDataset(TextImageDataset):
    """One split of a data set in the AttnGAN layout; images decoded (and cropped) per item.

    ``cache_images``: keep each decoded, cropped and resized image in memory (per process), so later epochs
    skip decoding (the reference re-decodes every epoch).
    """

    def __init__(self, layout: LayoutData, split: str, *, words_num: int, stage_sizes: Sequence[int],
                 train: bool, seed: int = 0, cache_images: bool = False):
        if split not in SPLITS:
            raise HarnessError(f"unknown split {split!r}; {layout.spec.name} has {', '.join(SPLITS)}")
        super().__init__(split=split, keys=layout.keys[split], class_ids=layout.class_ids[split],
                         captions=layout.captions[split], vocab=layout.vocab, words_num=words_num,
                         stage_sizes=stage_sizes, captions_per_image=max(map(len, layout.captions[split]))
                         if layout.captions[split] else layout.spec.captions_per_image, train=train, seed=seed)
        self.name = layout.spec.name
        self.layout = layout
        self.transform = StageTransform(list(stage_sizes), train)
        self.cache_images = cache_images
        self._decoded: dict[int, Image.Image] = {}
        self._raw_lines: dict[int, list[str]] = {}

    def image_path(self, index: int) -> Path:
        return self.layout.image_path(self.keys[index])

    def source_files(self, captions: bool = True) -> list[Path]:
        """The split lists, the CUB box files, every image of the split and (``captions``) its caption source:
        ``captions.pickle`` when there is one, else the split's ``text/`` files."""
        ddir = self.layout.data_dir
        files = [ddir / self.split / "filenames.pickle"]
        files += [ddir / self.split / "class_info.pickle"] if self.layout.spec.has_class_info else []
        files += [ddir / "CUB_200_2011" / f for f in ("images.txt", "bounding_boxes.txt")] \
            if self.layout.spec.has_bbox else []
        files += [self.image_path(i) for i in range(len(self))]
        if captions:
            pickle_path = ddir / "captions.pickle"
            text = keys_text_root(ddir, self.layout.keys)  # once: LayoutData.caption_file looks it up per key
            files += [pickle_path] if pickle_path.is_file() else [text / f"{k}.txt" for k in self.keys]
        return files

    def raw_caption(self, index: int, j: int) -> str:
        """The line of ``text/<key>.txt`` that caption ``j`` of image ``index`` (counting the kept captions, as
        ``captions``) was read from, as written (capitals and punctuation kept; surrounding whitespace removed).
        The file is read on first use and its lines kept. Raises DataError (one line, naming the file) when it
        is missing or has fewer captions than the caption's position (``captions.pickle`` not made from it)."""
        lines = self._raw_lines.get(index)
        key = self.keys[index]
        path = self.layout.caption_file(key)
        if lines is None:
            if not path.is_file():
                raise DataError(f"{self.name}: no caption file {path} for image {key!r}, whose raw captions are "
                                f"asked for (the manifest's caption column); expected layout: "
                                f"{self.layout.spec.layout}")
            lines = self._raw_lines[index] = counted_lines(path)
        pos = self.layout.positions[self.split][index][j]
        if pos >= len(lines):
            raise DataError(f"{path}: {len(lines)} captions, but {self.layout.captions_source} has caption {pos} "
                            f"of {key!r} (was it made from another text/?)")
        return lines[pos]

    def load_image(self, index: int) -> Image.Image:
        """The decoded image, cropped around its bbox (CUB), shorter side resized to the transform's load size."""
        if index in self._decoded:
            return self._decoded[index]
        img = open_image(self.image_path(index))
        bbox = self.layout.bboxes.get(self.keys[index])
        if bbox is not None:
            img = img.crop(bbox_crop_box(bbox, *img.size))
        img = resize_shorter(img, self.transform.load_size)
        if self.cache_images:
            self._decoded[index] = img
        return img

    def _images(self, index: int, rng: np.random.Generator):
        return self.transform(self.load_image(index), rng)


def build_layout_dataset(spec: LayoutSpec, cfg: DataConfig, split: str, *, train: bool, seed: int = 0,
                         cache_root: Optional[Path] = None) -> AttnGanDataset:
    """``DatasetInfo.build`` of an AttnGAN-layout data set (``cfg`` is a ``DataConfig``)."""
    from harness.config import stage_sizes

    layout = read_layout(spec, cfg.data_dir, captions_per_image=cfg.captions_per_image, cache_root=cache_root)
    return AttnGanDataset(layout, split, words_num=cfg.words_num if train else cfg.eval_words_num,
                          stage_sizes=stage_sizes(cfg), train=train, seed=seed,
                          cache_images=cfg.cache_images)
