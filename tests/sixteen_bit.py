"""16-bit image files for the reader tests, written from an 8-bit picture so the expected 8-bit read is known
without the reader: every 16-bit value is ``v << 8 | r`` for the picture's 8-bit value ``v`` and a random low
byte ``r``, so its high byte is ``v`` (the rule the readers apply; a random low byte tells it from rounding).

Kinds, by the mode PIL reads the file in:
* ``png-I;16``: a 16-bit grey PNG written from an ``I;16`` image (read as ``I;16``);
* ``png-I;16B``: the same written from an ``I;16B`` image (a PNG is big-endian on disk; read as ``I;16``);
* ``tiff-I;16B``: a big-endian 16-bit grey TIFF (the file PIL reads as ``I;16B``);
* ``png-RGB48``: a 48-bit RGB PNG (16 bits a channel), written byte by byte here since PIL cannot write one.
The grey kinds hold the picture's PIL ``L`` conversion, so their expected read is that grey in three channels.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("png-I;16", "png-I;16B", "tiff-I;16B", "png-RGB48")
READ_MODE = {"png-I;16": "I;16", "png-I;16B": "I;16", "tiff-I;16B": "I;16B", "png-RGB48": "RGB"}


def widen(v8: np.ndarray, seed: int) -> np.ndarray:
    """uint16 ``v << 8 | r``: the 8-bit values as the high bytes, random low bytes."""
    low = np.random.default_rng(seed).integers(0, 256, size=v8.shape)
    return (v8.astype(np.uint16) << 8) | low.astype(np.uint16)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def write_png48(path: Path, rgb16: np.ndarray) -> None:
    """An H×W×3 uint16 array as a 48-bit RGB PNG (colour type 2, bit depth 16, no filter)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw))
                     + _png_chunk(b"IEND", b""))


def write_16bit(path: Path, picture: Image.Image, kind: str, seed: int = 0) -> np.ndarray:
    """Write ``picture`` to ``path`` as a 16-bit file of ``kind`` (PIL finds the format from the content, so the
    name may say .jpg); returns the H×W×3 uint8 array a right reader gives."""
    if kind == "png-RGB48":
        rgb = np.asarray(picture.convert("RGB"))
        write_png48(path, widen(rgb, seed))
        return rgb
    grey = np.asarray(picture.convert("L"))
    wide = widen(grey, seed)
    h, w = grey.shape
    if kind == "png-I;16":
        Image.fromarray(wide).save(path, format="PNG")
    elif kind == "png-I;16B":
        Image.frombytes("I;16B", (w, h), wide.astype(">u2").tobytes()).save(path, format="PNG")
    else:
        Image.frombytes("I;16B", (w, h), wide.astype(">u2").tobytes()).save(path, format="TIFF")
    with Image.open(path) as im:
        assert im.mode == READ_MODE[kind], (kind, im.mode)
    return np.repeat(grey[..., None], 3, axis=2)
