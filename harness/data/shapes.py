"""``shapes``: the built-in synthetic text-to-image data set (no download, learnable on a CPU in minutes).

A scene is drawn from a seed: a background colour, a main shape with a colour, a size and a position, and
(``two_objects``, about half the scenes) a second, smaller object of another colour and shape in the corner
farthest from the main one. Everything is bold and flat so a tiny generator gets colours and shapes right
quickly at 32² / 64².

* **Splits**: train and test scenes come from separate seed streams (``[seed, split, index]``), so no test
  image is a training image; both use the same attribute vocabulary.
* **Captions**: ``captions_per_image`` (10) per image from templates and synonyms; every caption names the
  main object's colour (always the exact colour word) and its shape (the shape word or a synonym of it).
  Some templates appear only in the test split (``TEST_TEMPLATES``).
* **Class** = the main object's (colour, shape) combination: ``colour_index · len(SHAPES) + shape_index``.
* **Vocabulary**: every word the templates and phrases can produce (sorted, ``<end>`` = 0), the same for
  every seed and split size.
* **Rendering**: supersampled (4×, 2× above 128²) then box-filtered down, at any stage size; the lower stages
  are downscales of the top one, as in the reference pipeline. Renders are cached in memory per index.

``ShapesDataset.attribute_names()`` and ``dataset.attributes(i)`` expose the ground truth to the evaluation
probe.
"""
from __future__ import annotations

import math
import string
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from harness.config import stage_sizes
from harness.data.dataset import TextImageDataset
from harness.data.transforms import stage_images
from harness.data.vocab import Vocabulary, tokenize
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.config import DataConfig

# ---- attribute vocabulary -------------------------------------------------------------------------------
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (35, 70, 230), "yellow": (245, 215, 25),
    "purple": (140, 45, 180), "orange": (250, 135, 20), "pink": (250, 120, 195), "cyan": (30, 205, 215),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (245, 245, 245), "black": (15, 15, 15),
                                                "gray": (120, 120, 120)}
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
SIZES: dict[str, float] = {"small": 0.34, "medium": 0.47, "large": 0.6}  # extent as a fraction of the side
POSITIONS: dict[str, tuple[float, float]] = {"center": (0.5, 0.5), "left": (0.32, 0.5), "right": (0.68, 0.5),
                                             "top": (0.5, 0.32), "bottom": (0.5, 0.68)}
SECOND_SIZE = 0.24
CORNERS = ((0.16, 0.16), (0.84, 0.16), (0.16, 0.84), (0.84, 0.84))

# ---- caption phrases --------------------------------------------------------------------------------------
SHAPE_WORDS: dict[str, list[str]] = {
    "circle": ["circle", "disc", "round disc"], "square": ["square", "box"], "triangle": ["triangle"],
    "diamond": ["diamond", "rhombus"], "star": ["star", "five pointed star"], "cross": ["cross", "plus sign"],
}
SIZE_WORDS: dict[str, list[str]] = {"small": ["small", "tiny", "little"], "medium": ["medium", "medium sized"],
                                    "large": ["large", "big", "huge"]}
POSITION_WORDS: dict[str, list[str]] = {
    "center": ["in the center", "in the middle"], "left": ["on the left", "at the left side"],
    "right": ["on the right", "at the right side"], "top": ["at the top", "near the top"],
    "bottom": ["at the bottom", "near the bottom"],
}
BACKGROUND_WORDS = ["on a {bg} background", "against a {bg} backdrop", "over a {bg} background"]
SECOND_WORDS = ["next to a small {c2} {s2}", "with a tiny {c2} {s2} nearby", "beside a little {c2} {s2}"]

# {size} {colour} {shape} {pos} {bg} {second}; "{second}" is empty when the scene has one object.
TRAIN_TEMPLATES = [
    "a {size} {colour} {shape} {pos}",
    "a {colour} {shape} {bg}",
    "there is a {size} {colour} {shape} {pos}",
    "this picture shows a {colour} {shape} {pos} {second}",
    "a {colour} {shape} {second}",
    "{size} {colour} {shape} {bg}",
    "the image has a {colour} {shape} that is {size}",
    "a {size} {shape} painted {colour} {pos}",
]
TEST_TEMPLATES = [
    "we see one {colour} {shape} {pos} {bg}",
    "{pos} there is a {colour} {shape}",
    "a {shape} of {colour} colour {bg}",
]
TEST_ONLY_PER_IMAGE = 3  # test captions 0..2 always use a test-only template


@dataclass(frozen=True)
class Scene:
    """One scene's attributes (indices into the tables above) and its jittered geometry (unit square)."""

    colour: int
    shape: int
    size: int
    position: int
    background: int
    cx: float
    cy: float
    radius: float
    second: Optional[tuple[int, int, float, float]] = None  # (colour, shape, cx, cy)


def draw_scene(rng: np.random.Generator, two_objects: bool) -> Scene:
    """Draw the attributes and geometry of one scene."""
    colour = int(rng.integers(len(COLOURS)))
    shape = int(rng.integers(len(SHAPES)))
    size = int(rng.integers(len(SIZES)))
    position = int(rng.integers(len(POSITIONS)))
    background = int(rng.integers(len(BACKGROUNDS)))
    px, py = list(POSITIONS.values())[position]
    cx, cy = px + rng.uniform(-0.03, 0.03), py + rng.uniform(-0.03, 0.03)
    radius = list(SIZES.values())[size] / 2 * rng.uniform(0.95, 1.05)
    second = None
    if two_objects and rng.random() < 0.5:
        c2 = int((colour + rng.integers(1, len(COLOURS))) % len(COLOURS))
        s2 = int((shape + rng.integers(1, len(SHAPES))) % len(SHAPES))
        corner = max(CORNERS, key=lambda c: (c[0] - cx) ** 2 + (c[1] - cy) ** 2)
        second = (c2, s2, corner[0], corner[1])
    return Scene(colour, shape, size, position, background, float(cx), float(cy), float(radius), second)


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a shape of half-extent r centred at (cx, cy) (pixel units; circle handled separately)."""
    if shape == "square":
        a = r * 0.85
        return [(cx - a, cy - a), (cx + a, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.75 * r, cy), (cx, cy + r), (cx - 0.75 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        return pts
    if shape == "cross":
        t = 0.34 * r
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t), (cx + r, cy + t),
                (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t), (cx - r, cy + t),
                (cx - r, cy - t), (cx - t, cy - t)]
    raise ValueError(shape)


def _draw_object(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], cx: float, cy: float,
                 r: float) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_shape_polygon(shape, cx, cy, r), fill=colour)


def render_scene(scene: Scene, size: int) -> Image.Image:
    """The scene as a size×size RGB image, antialiased by supersampling."""
    ss = 4 if size <= 128 else 2
    big = size * ss
    img = Image.new("RGB", (big, big), list(BACKGROUNDS.values())[scene.background])
    draw = ImageDraw.Draw(img)
    colours = list(COLOURS.values())
    if scene.second is not None:
        c2, s2, x2, y2 = scene.second
        _draw_object(draw, SHAPES[s2], colours[c2], x2 * big, y2 * big, SECOND_SIZE / 2 * big)
    _draw_object(draw, SHAPES[scene.shape], colours[scene.colour], scene.cx * big, scene.cy * big,
                 scene.radius * big)
    return img.resize((size, size), Image.BOX)


def _fill(template: str, scene: Scene, rng: np.random.Generator) -> str:
    def pick(options: list[str]) -> str:
        return options[int(rng.integers(len(options)))]

    colour = list(COLOURS)[scene.colour]
    words = {
        "size": pick(SIZE_WORDS[list(SIZES)[scene.size]]),
        "colour": colour,
        "shape": pick(SHAPE_WORDS[SHAPES[scene.shape]]),
        "pos": pick(POSITION_WORDS[list(POSITIONS)[scene.position]]),
        "bg": pick(BACKGROUND_WORDS).format(bg=list(BACKGROUNDS)[scene.background]),
        "second": "",
    }
    if scene.second is not None:
        c2, s2, _, _ = scene.second
        second = pick(SECOND_WORDS).format(c2=list(COLOURS)[c2], s2=pick(SHAPE_WORDS[SHAPES[s2]]))
        if "{second}" in template or rng.random() < 0.3:
            words["second"] = second
            if "{second}" not in template:
                template = template + " {second}"
    text = template.format(**words)
    return " ".join(text.split())


def scene_captions(scene: Scene, rng: np.random.Generator, n: int, test: bool) -> list[str]:
    """``n`` captions of a scene; test scenes get ``TEST_ONLY_PER_IMAGE`` captions from test-only templates."""
    out = []
    for j in range(n):
        if test and j < TEST_ONLY_PER_IMAGE:
            pool = TEST_TEMPLATES
        else:
            pool = TRAIN_TEMPLATES + (TEST_TEMPLATES if test else [])
        out.append(_fill(pool[int(rng.integers(len(pool)))], scene, rng))
    return out


def shapes_vocabulary() -> Vocabulary:
    """Every word a shapes caption can contain, sorted, after ``<end>``."""
    texts = TRAIN_TEMPLATES + TEST_TEMPLATES + BACKGROUND_WORDS + SECOND_WORDS + list(COLOURS) + list(BACKGROUNDS)
    texts += [w for d in (SHAPE_WORDS, SIZE_WORDS, POSITION_WORDS) for v in d.values() for w in v]
    words: set[str] = set()
    for t in texts:  # the literal text of each template (its {slots} left out)
        words.update(w for literal, *_ in string.Formatter().parse(t) for w in tokenize(literal))
    return Vocabulary.from_words(sorted(words))


SPLIT_CODES = {"train": 0, "test": 1}


class ShapesDataset(TextImageDataset):
    """One split of the synthetic shapes data set."""

    name = "shapes"

    def __init__(self, cfg: DataConfig, split: str, *, train: bool, seed: int = 0, cache_bytes: int = 256 << 20):
        if split not in SPLIT_CODES:
            raise HarnessError(f"unknown split {split!r}; shapes has {', '.join(SPLIT_CODES)}")
        sc = cfg.shapes
        n = sc.train_images if split == "train" else sc.test_images
        per = cfg.captions_per_image or 10
        self.scenes: list[Scene] = []
        texts: list[list[str]] = []
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence([sc.seed, SPLIT_CODES[split], i]))
            scene = draw_scene(rng, sc.two_objects)
            self.scenes.append(scene)
            texts.append(scene_captions(scene, rng, per, test=(split == "test")))
        vocab = shapes_vocabulary()
        captions = [[vocab.encode(t) for t in caps] for caps in texts]
        keys = [shapes_key(s, split, i) for i, s in enumerate(self.scenes)]
        class_ids = [s.colour * len(SHAPES) + s.shape for s in self.scenes]
        super().__init__(split=split, keys=keys, class_ids=class_ids, captions=captions, vocab=vocab,
                         words_num=cfg.words_num if train else cfg.eval_words_num,
                         stage_sizes=stage_sizes(cfg), captions_per_image=per, train=train, seed=seed)
        self.texts = texts
        self._renders: OrderedDict[int, Image.Image] = OrderedDict()
        self._cache_bytes = cache_bytes

    def source_files(self, captions: bool = True) -> list:
        return []  # generated from data.shapes.*, which every cache key holds

    # ---- ground truth for the evaluation probe ------------------------------------------------------------
    @staticmethod
    def attribute_names() -> dict[str, list[str]]:
        return {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "position": list(POSITIONS),
                "background": list(BACKGROUNDS)}

    def attributes(self, index: int) -> dict[str, int]:
        s = self.scenes[index]
        return {"colour": s.colour, "shape": s.shape, "size": s.size, "position": s.position,
                "background": s.background}

    @staticmethod
    def class_name(class_id: int) -> str:
        return f"{list(COLOURS)[class_id // len(SHAPES)]} {SHAPES[class_id % len(SHAPES)]}"

    def caption_text(self, index: int, j: int) -> str:
        return self.texts[index][j]

    # ---- images -------------------------------------------------------------------------------------------
    def render(self, index: int, size: Optional[int] = None) -> Image.Image:
        """The scene at ``size`` (default: the last stage), cached in memory for the last stage."""
        size = size or self.stage_sizes[-1]
        if size != self.stage_sizes[-1]:
            return render_scene(self.scenes[index], size)
        img = self._renders.get(index)
        if img is None:
            img = render_scene(self.scenes[index], size)
            self._renders[index] = img
            if len(self._renders) * size * size * 3 > self._cache_bytes:
                self._renders.popitem(last=False)
        return img

    def _images(self, index: int, rng: np.random.Generator) -> list[Tensor]:
        # No flip or crop: they would change what "left"/"right" and the positions in the captions mean.
        return stage_images(self.render(index), self.stage_sizes)


def shapes_key(scene: Scene, split: str, index: int) -> str:
    """A CUB-style key: ``<class dir>/<name>`` (class dirs numbered from 001 like CUB)."""
    cls = scene.colour * len(SHAPES) + scene.shape
    name = f"{list(COLOURS)[scene.colour]}_{SHAPES[scene.shape]}"
    return f"{cls + 1:03d}.{name}/{name}_{split}_{index:05d}"


def build_shapes(cfg: DataConfig, split: str, *, train: bool, seed: int = 0,
                 cache_root: Optional[Path] = None) -> ShapesDataset:
    """``DatasetInfo.build`` of shapes (``cfg``: DataConfig; nothing is read or cached on disk)."""
    return ShapesDataset(cfg, split, train=train, seed=seed)
