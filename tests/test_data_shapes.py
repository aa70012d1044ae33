"""The built-in shapes data set: determinism, captions, splits, attributes, rendering."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import DataConfig
from harness.data import shapes as S
from harness.data.shapes import ShapesDataset, build_shapes
from harness.data.vocab import tokenize


def cfg(**shapes) -> DataConfig:
    c = DataConfig(base_size=16)
    c.shapes.train_images, c.shapes.test_images = 40, 20
    for k, v in shapes.items():
        setattr(c.shapes, k, v)
    return c


def test_deterministic_from_the_seed():
    a, b = ShapesDataset(cfg(), "train", train=True), ShapesDataset(cfg(), "train", train=True)
    assert a.keys == b.keys and a.texts == b.texts and a.scenes == b.scenes
    assert torch.equal(a[5]["images"][-1], b[5]["images"][-1])
    assert ShapesDataset(cfg(seed=1), "train", train=True).texts != a.texts


def test_test_split_has_its_own_images():
    tr, te = ShapesDataset(cfg(), "train", train=False), ShapesDataset(cfg(), "test", train=False)
    train_scenes = set(tr.scenes)
    assert not any(s in train_scenes for s in te.scenes)
    assert len(tr) == 40 and len(te) == 20


def test_every_caption_names_colour_and_shape():
    for split in ("train", "test"):
        ds = ShapesDataset(cfg(), split, train=False)
        for i in range(len(ds)):
            a = ds.attributes(i)
            colour = ds.attribute_names()["colour"][a["colour"]]
            shape_words = S.SHAPE_WORDS[ds.attribute_names()["shape"][a["shape"]]]
            assert len(ds.texts[i]) == 10
            for text in ds.texts[i]:
                assert colour in text.split(), text
                main_part = text.split(" next to ")[0].split(" with a tiny ")[0].split(" beside ")[0]
                assert any(w in main_part for w in shape_words), text


def test_some_templates_only_in_test():
    tr, te = ShapesDataset(cfg(), "train", train=False), ShapesDataset(cfg(), "test", train=False)
    test_only = {"we", "see", "one", "of"}  # words of TEST_TEMPLATES that no train template or phrase has
    train_words = {w for caps in tr.texts for t in caps for w in tokenize(t)}
    test_words = {w for caps in te.texts for t in caps for w in tokenize(t)}
    assert not (test_only & train_words) and test_only <= test_words
    assert set(tr.vocab.ixtoword) == set(te.vocab.ixtoword)  # one vocabulary for both
    assert train_words | test_words <= set(tr.vocab.ixtoword)


def test_classes_and_attributes():
    ds = ShapesDataset(cfg(), "train", train=False)
    names = ShapesDataset.attribute_names()
    assert set(names) == {"colour", "shape", "size", "position", "background"}
    for i in range(len(ds)):
        a = ds.attributes(i)
        assert all(0 <= a[k] < len(names[k]) for k in names)
        assert ds.class_ids[i] == a["colour"] * len(names["shape"]) + a["shape"]
        assert ds[i]["class_id"] == ds.class_ids[i]
    assert ShapesDataset.class_name(7) == "green square"


def test_render_sizes_and_colours():
    c = cfg(two_objects=False)
    ds = build_shapes(c, "train", train=True)
    item = ds[0]
    assert [tuple(im.shape) for im in item["images"]] == [(3, 16, 16), (3, 32, 32), (3, 64, 64)]
    assert all(im.min() >= -1 and im.max() <= 1 for im in item["images"])
    scene = S.Scene(colour=0, shape=0, size=2, position=0, background=0, cx=0.5, cy=0.5, radius=0.3)
    img = np.asarray(S.render_scene(scene, 32)).astype(int)
    assert np.abs(img[16, 16] - np.array(S.COLOURS["red"])).max() <= 2  # the main object at the centre
    assert np.abs(img[1, 1] - np.array(S.BACKGROUNDS["white"])).max() <= 2  # the background in the corner
    edge = img[16, :, 1]  # antialiased: intermediate values at the circle's border
    assert any(40 < v < 240 for v in edge)


def test_words_num_and_item_fields():
    tr = build_shapes(cfg(), "train", train=True)
    te = build_shapes(cfg(), "test", train=False)
    assert tr.words_num == 18 and te.words_num == 25
    item = tr[3]
    assert set(item) == {"images", "caption", "length", "class_id", "key", "index"}
    assert item["caption"].shape == (18,) and item["caption"][item["length"]:].sum() == 0
    words = item["caption"][: item["length"]].tolist()

    def is_subsequence(short: list[int], long: list[int]) -> bool:
        it = iter(long)
        return all(t in it for t in short)

    assert any(words == c or (len(c) > 18 and is_subsequence(words, c)) for c in tr.captions(3))


@pytest.mark.parametrize("two", [True, False])
def test_second_object_share(two):
    ds = ShapesDataset(cfg(two_objects=two), "train", train=False)
    share = np.mean([s.second is not None for s in ds.scenes])
    assert (0.2 < share < 0.8) if two else share == 0
