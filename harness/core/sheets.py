"""Sample sheets: a grid of images with their captions written underneath (PNG).

Used by training samples, ``harness sample`` and ``harness datasets inspect``.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from harness.util.atomic import check_target, write_file

PAD = 4
LINE_GAP = 2
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def tensor_to_image(t: Tensor) -> Image.Image:
    """A 3×H×W tensor in [-1, 1] as an RGB PIL image."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy())


def _rows(images: Tensor | Sequence, ncols: Optional[int]) -> list[list[Tensor]]:
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images must be N×3×H×W, got shape {tuple(images.shape)}")
        n = images.shape[0]
        ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
        flat = list(images)
        return [flat[i:i + ncols] for i in range(0, n, ncols)]
    return [list(row) for row in images]


def _caption_rows(captions: Optional[Sequence], shape: list[int]) -> list[list[str]]:
    if captions is None:
        return [[""] * n for n in shape]
    captions = list(captions)
    if captions and not isinstance(captions[0], str):  # already rows
        return [[str(c) for c in row] + [""] * (n - len(row)) for row, n in zip(captions, shape)]
    out, k = [], 0
    for n in shape:
        out.append([str(c) for c in captions[k:k + n]] + [""] * max(0, n - len(captions[k:k + n])))
        k += n
    return out


FONT_SIZE = 12


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # pragma: no cover  (Pillow < 10.1: bitmap font, no size)
        return ImageFont.load_default()


def _gap(font: ImageFont.ImageFont) -> float:
    """Space between words (the default font's own space is very narrow)."""
    return max(_word_width(font, " "), FONT_SIZE / 3)


def _word_width(font: ImageFont.ImageFont, word: str) -> float:
    return font.getlength(word) if hasattr(font, "getlength") else len(word) * 6


def _text_width(font: ImageFont.ImageFont, text: str) -> float:
    words = text.split()
    return sum(_word_width(font, w) for w in words) + _gap(font) * max(len(words) - 1, 0)


def _draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: ImageFont.ImageFont) -> None:
    """Draw a line word by word, with ``_gap`` between words."""
    x, y = xy
    for w in text.split():
        draw.text((x, y), w, fill=INK, font=font)
        x += _word_width(font, w) + _gap(font)


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    if not text:
        return []
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if _text_width(font, trial) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    # a single word longer than the cell: cut it by characters
    out = []
    for ln in lines:
        out.extend(textwrap.wrap(ln, max(1, int(width / max(_text_width(font, "m"), 1)))) if
                   _text_width(font, ln) > width else [ln])
    return out


def save_sheet(images: Tensor | Sequence, captions: Optional[Sequence] = None, path: str | Path = "sheet.png", *,
               ncols: Optional[int] = None, row_labels: Optional[Sequence[str]] = None,
               col_labels: Optional[Sequence[str]] = None, force: bool = False) -> Path:
    """Write a PNG grid and return its path (through the one writer; ``force``: a symlink at ``path`` is replaced).

    images:     N×3×H×W tensor in [-1, 1] (laid out ``ncols`` per row, default ≈ √N), or a list of rows, each
                a sequence of 3×H×W tensors (rows may have different lengths; images of different sizes are
                scaled to the largest, nearest-neighbour)
    captions:   one string per image (row-major), or a list of rows of strings; wrapped under each image
    row_labels: text in a column left of each row; col_labels: text above each column
    """
    check_target(path, force=force)  # refused before any drawing
    rows = _rows(images, ncols)
    if not rows or not any(rows):
        raise ValueError("save_sheet: no images")
    caps = _caption_rows(captions, [len(r) for r in rows])
    font = _font()
    line_h = int(sum(abs(v) for v in font.getbbox("Ag")[1::2])) if hasattr(font, "getbbox") else 11
    line_h = max(line_h, 10) + LINE_GAP
    cell = max(max(int(t.shape[-1]), int(t.shape[-2])) for r in rows for t in r)
    ncol = max(len(r) for r in rows)
    wrapped = [[_wrap(c, font, cell) for c in row] for row in caps]
    cap_h = [max((len(w) for w in row), default=0) * line_h for row in wrapped]
    label_w = int(max((_text_width(font, s) for s in row_labels or []), default=0)) + (2 * PAD if row_labels else 0)
    head_h = line_h + PAD if col_labels else 0
    width = label_w + ncol * (cell + PAD) + PAD
    height = head_h + sum(cell + PAD + h for h in cap_h) + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(col_labels or []):
        _draw_text(draw, (label_w + PAD + j * (cell + PAD), PAD // 2), str(label), font)
    y = head_h + PAD
    for r, row in enumerate(rows):
        if row_labels and r < len(row_labels):
            _draw_text(draw, (PAD, y + cell // 2 - line_h // 2), str(row_labels[r]), font)
        for j, t in enumerate(row):
            x = label_w + PAD + j * (cell + PAD)
            im = tensor_to_image(t)
            if im.size != (cell, cell):
                im = im.resize((cell, cell), Image.NEAREST)
            sheet.paste(im, (x, y))
            for k, line in enumerate(wrapped[r][j]):
                _draw_text(draw, (x, y + cell + PAD // 2 + k * line_h), line, font)
        y += cell + PAD + cap_h[r]
    return write_file(Path(path), lambda f: sheet.save(f, format="PNG"), force=force)
