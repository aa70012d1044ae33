"""16-bit image files are read as 8 bits by their high byte, not clipped (PIL's own conversion turns a 16-bit grey
picture white), in the one reader every data set uses; pixels with no fixed range are refused naming the file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.attngan_layout import open_image
from harness.data.coco import COCO, build_coco
from harness.data.cub import CUB, build_cub
from harness.data.image_file import read_rgb8, rgb8
from harness.data.transforms import to_tensor
from harness.data.validate import find_problems
from harness.data.writer import write_dataset
from harness.util.errors import DataError
from sixteen_bit import KINDS, widen, write_16bit
from data_fixtures import SMALL, data_plugins, small_cfg

BUILD = {"cub": build_cub, "coco": build_coco}
SPEC = {"cub": CUB, "coco": COCO}


def _picture(seed: int, size: tuple[int, int] = (7, 5)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", KINDS)
def test_file_is_read_by_its_high_byte(kind, tmp_path):
    path = tmp_path / "x.img"
    expected = write_16bit(path, _picture(1), kind, seed=2)
    got = np.asarray(read_rgb8(path))
    assert got.dtype == np.uint8 and np.array_equal(got, expected)


def test_edge_values():
    """0, 255, 256, 257, 65279 and 65535 against v >> 8 and the exact v·255/65535 (never more than a level off)."""
    values = np.array([[0, 255, 256, 257, 0x12FF, 0x9A3C, 65279, 65535]], dtype=np.uint16)
    got = np.asarray(rgb8(Image.fromarray(values)))
    assert np.array_equal(got, np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2))
    exact = np.rint(values.astype(np.float64) * 255 / 65535)
    assert np.abs(got[..., 0] - exact).max() <= 1


def test_to_tensor_scales_a_16bit_image():
    grey = np.random.default_rng(3).integers(0, 256, size=(4, 6), dtype=np.uint8)
    out = to_tensor(Image.fromarray(widen(grey, seed=4)))
    expected = torch.from_numpy(grey.astype(np.float32) / 127.5 - 1.0).expand(3, -1, -1)
    assert out.shape == (3, 4, 6) and torch.allclose(out, expected, atol=1e-6)


def test_I_mode_from_a_png_is_16_bit_and_elsewhere_refused(tmp_path):
    """Older PIL versions read a 16-bit grey PNG as a 32-bit ``I`` image: that one holds 16 bits; an ``I`` image
    of any other file (a 32-bit TIFF) has no fixed range."""
    path = tmp_path / "g.png"
    expected = write_16bit(path, _picture(5), "png-I;16", seed=6)
    with Image.open(path) as im:
        as_older_pil = im.convert("I")
    as_older_pil.format = "PNG"
    assert np.array_equal(np.asarray(rgb8(as_older_pil)), expected)
    as_older_pil.format = "TIFF"
    with pytest.raises(DataError, match=r"where: 32-bit integer pixels \(mode I\)"):
        rgb8(as_older_pil, where="where")


# ---- data sets: cub and coco read the same 8-bit pixels from a 16-bit file as from the 8-bit one ----------------
@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("written16")
    return {layout: write_dataset(data_plugins(), "shapes", base / layout, layout=layout, overrides=SMALL)
            for layout in ("cub", "coco")}


@pytest.mark.parametrize("layout", ["cub", "coco"])
def test_data_sets_read_16bit_images(layout, written, tmp_path):
    """Images 0-3 of the test split replaced by one 16-bit file of each kind (under their .jpg names, as a
    converted data set would have them); a copy holds the expected 8-bit pixels as lossless PNGs instead. Both are
    cropped and resized by the same code, so the images match exactly when the reads do."""
    wide = Path(shutil.copytree(written[layout], tmp_path / "wide"))
    eight = Path(shutil.copytree(written[layout], tmp_path / "eight"))
    ref = BUILD[layout](small_cfg(layout, eight), "test", train=False)
    for i, kind in enumerate(KINDS):
        picture = open_image(ref.image_path(i))
        expected = write_16bit(wide / ref.image_path(i).relative_to(eight), picture, kind, seed=i)
        Image.fromarray(expected).save(ref.image_path(i), format="PNG")
    ref = BUILD[layout](small_cfg(layout, eight), "test", train=False)
    ds = BUILD[layout](small_cfg(layout, wide), "test", train=False)
    for i, kind in enumerate(KINDS):
        assert np.array_equal(np.asarray(ds.load_image(i)), np.asarray(ref.load_image(i))), kind
        assert all(torch.equal(a, b) for a, b in zip(ds[i]["images"], ref[i]["images"])), kind
    assert find_problems(SPEC[layout], wide) == []  # 16-bit files are no problem for the check either


def test_float_pixels_are_refused_naming_the_file(written, tmp_path):
    cub = Path(shutil.copytree(written["cub"], tmp_path / "cub"))
    ds = build_cub(small_cfg("cub", cub), "test", train=False)
    path = ds.image_path(1)
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(path, format="TIFF")
    line = f"{path}: 32-bit float pixels (mode F) have no fixed range to read as 8 bits"
    with pytest.raises(DataError) as e:
        ds.load_image(1)
    assert str(e.value).startswith(line) and "\n" not in str(e.value)
    assert [p for p in find_problems(CUB, cub) if p.startswith(line)]
