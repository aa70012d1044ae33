"""Reading an image file as 8-bit RGB: the one reader of every data set and of ``evaluate-images``.

PIL's own ``convert("RGB")`` clips 16-bit grey pixels at 255, so all but the darkest pixels of a 16-bit grey file
turn white. Here 16-bit pixels keep their high byte (``v >> 8``): the rule PIL itself applies when it decodes a
16-bit colour file (48-bit RGB, 64-bit RGBA) to 8 bits, so the same picture reads the same from a grey and from a
colour 16-bit file. ``v >> 8`` and ``round(v * 255 / 65535)`` differ by at most one level.

Pixels of 32-bit integers (other than a PNG's, which hold at most 16 bits) and of floats have no fixed range to
scale from: such files are refused, naming the file and its mode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from harness.util.errors import DataError

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
NO_FIXED_RANGE = {"I": "32-bit integer", "F": "32-bit float"}


def rgb8(img: Image.Image, *, where: str = "image") -> Image.Image:
    """``img`` as 8-bit RGB, 16-bit grey scaled by its high byte (``I`` mode is 16-bit when it comes from a PNG:
    older PIL versions read 16-bit grey PNGs so). Raises DataError naming ``where`` for pixels of no fixed range."""
    sixteen = img.mode in SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG")
    if sixteen:
        grey = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)  # asarray honours the byte order
        return Image.fromarray(grey).convert("RGB")
    if img.mode in NO_FIXED_RANGE:
        raise DataError(f"{where}: {NO_FIXED_RANGE[img.mode]} pixels (mode {img.mode}) have no fixed range to "
                        f"read as 8 bits; save it as an 8- or 16-bit image")
    return img.convert("RGB")


def read_rgb8(path: Path, *, max_pixels: Optional[int] = None) -> Image.Image:
    """The file decoded fully (a truncated file fails here) as 8-bit RGB. Raises DataError for pixels of no fixed
    range or, with ``max_pixels``, for more pixels than that (read from the header, before any decoding: a
    decompression bomb costs nothing), and whatever PIL raises for a missing or undecodable file (callers name the
    file their own way)."""
    with Image.open(path) as im:
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise DataError(f"{path}: {im.width}×{im.height} pixels, more than the {max_pixels:,} allowed here")
        im.load()
        return rgb8(im, where=str(path))
