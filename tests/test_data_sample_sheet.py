"""Sample sheets: grid geometry, rows of different lengths and sizes, wrapped captions, labels."""
from __future__ import annotations

import torch
from PIL import Image

from harness.core.sheets import save_sheet, tensor_to_image


def test_tensor_grid(tmp_path):
    imgs = torch.rand(6, 3, 16, 16) * 2 - 1
    path = save_sheet(imgs, [f"caption {i}" for i in range(6)], tmp_path / "a.png", ncols=3)
    with Image.open(path) as im:
        w, h = im.size
    assert w == 3 * (16 + 4) + 4 and h > 2 * 16


def test_rows_labels_and_long_captions_grow_the_sheet(tmp_path):
    rows = [[torch.zeros(3, 8, 8), torch.zeros(3, 16, 16)], [torch.ones(3, 16, 16)]]
    short = save_sheet(rows, [["a", "b"], ["c"]], tmp_path / "s.png")
    long = save_sheet(rows, [["a " * 40, "b"], ["c"]], tmp_path / "l.png", row_labels=["stage", "x"],
                      col_labels=["64", "128"])
    with Image.open(short) as s, Image.open(long) as l:
        assert l.size[1] > s.size[1] and l.size[0] > s.size[0]
        assert s.size[0] == 2 * (16 + 4) + 4  # the 8×8 image is scaled to the 16×16 cell


def test_tensor_to_image_range():
    im = tensor_to_image(torch.stack([torch.full((2, 2), -1.0), torch.zeros(2, 2), torch.ones(2, 2)]))
    assert im.getpixel((0, 0)) == (0, 128, 255)
