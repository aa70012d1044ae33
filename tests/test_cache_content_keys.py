"""Cache keys follow the data files: a DAMSM or real-image features built from files changed since (in place, same
paths) are not found again; ``data.strict_cache`` sees a change that keeps size and modification time; ``harness
cache`` lists and removes entries."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from harness.build import prepare_config
from harness.cli import main
from harness.contract.plugins import build_plugins
from harness.core.cache import cached, files_digest, list_entries, lookup
from harness.data.validate import check_dataset, file_listing_hash
from harness.util.errors import DataError
from harness.evaluation.metrics.features import FeatureStream
from harness.evaluation.metrics.interface import EvalContext, real_to_uint8
from harness.train import pretrain

from core_tiny_method import TinyMethod

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models on one intra-op thread


@pytest.fixture
def data(tmp_path, shapes_cub_dir, results_root):
    """A private copy of the tiny CUB-layout data set (its images are changed in place), plugins and a config."""
    ddir = tmp_path / "cub"
    shutil.copytree(shapes_cub_dir, ddir)
    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    return plugins, ddir, results_root


def _config(plugins, ddir, *overrides):
    return prepare_config(plugins, "tinygan", dataset="cub", data_dir=str(ddir), preset="test",
                          overrides=list(overrides), seed=0)


def _splits(plugins, cfg, root):
    info = plugins.dataset("cub")
    return (info.build(cfg.data, "train", train=True, seed=0, cache_root=root),
            info.build(cfg.data, "test", train=False, seed=0, cache_root=root))


def _rewrite(path: Path, *, keep_size_and_time: bool = False) -> None:
    """Replace the image at ``path`` by its negative (same path); optionally padded to the old byte count (a JPEG
    decoder stops at its end marker) with the old modification time put back."""
    old = path.stat()
    with Image.open(path) as im:
        negative = ImageOps.invert(im.convert("RGB"))
    for quality in (90, 70, 50, 30, 10):
        buf = io.BytesIO()
        negative.save(buf, format="JPEG", quality=quality)
        if not keep_size_and_time or buf.tell() <= old.st_size:
            break
    blob = buf.getvalue()
    if keep_size_and_time:
        assert len(blob) <= old.st_size
        blob += b"\0" * (old.st_size - len(blob))
    path.write_bytes(blob)
    if keep_size_and_time:
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
        assert path.stat().st_size == old.st_size and path.stat().st_mtime_ns == old.st_mtime_ns


def test_files_digest_is_the_validation_listing_and_strict_reads_contents(tmp_path):
    (tmp_path / "a").mkdir()
    for name, text in (("a/x.txt", "one"), ("b.txt", "two")):
        (tmp_path / name).write_text(text)
    rows = [[str(p.relative_to(tmp_path)), p.stat().st_size, p.stat().st_mtime_ns]
            for p in (tmp_path / "b.txt", tmp_path / "a" / "x.txt")]  # a directory's files, then its subdirectories
    expected = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:32]
    assert file_listing_hash(tmp_path) == expected  # the data-validation key is unchanged
    files = [tmp_path / "a" / "x.txt", tmp_path / "b.txt"]
    cheap, strict = files_digest(files, tmp_path), files_digest(files, tmp_path, strict=True)
    st = files[0].stat()
    files[0].write_text("ONE")  # same size, time put back
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert files_digest(files, tmp_path) == cheap  # what size and time cannot see ...
    assert files_digest(files, tmp_path, strict=True) != strict  # ... the contents can
    assert files_digest([tmp_path / "gone"]) != files_digest([])


def test_damsm_is_trained_again_after_its_images_change_in_place(data, capsys):
    plugins, ddir, root = data
    cfg = _config(plugins, ddir)
    train, test = _splits(plugins, cfg, root)
    first = pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu")
    assert pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu") == first
    assert "cached" in capsys.readouterr().out
    key = json.loads((first / "key.json").read_text())
    assert key["data"]["files"]["count"] == len(train.source_files()) and not key["data"]["files"]["strict"]

    _rewrite(train.image_path(0))
    second = pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu")
    # the message says why the cached DAMSM was not reused: the training split's files changed
    assert second != first and (f"pretrain damsm: training (not cached yet; the closest cached entry, {first}, was "
                                f"made for other data.files.files)") in capsys.readouterr().out
    assert first.is_dir()  # the old entry is kept (harness cache remove deletes it)

    _rewrite(test.image_path(0))  # the test split is not what the DAMSM trains on
    assert pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu") == second


def test_strict_cache_sees_a_change_that_keeps_size_and_time(data, capsys):
    plugins, ddir, root = data
    cfg = _config(plugins, ddir, "data.strict_cache=true")
    train, test = _splits(plugins, cfg, root)
    first = pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu")
    assert json.loads((first / "key.json").read_text())["data"]["files"]["strict"]
    cheap = _config(plugins, ddir)
    cheap_entry = pretrain.ensure_damsm(plugins, cheap, root, train, test, "cpu")

    _rewrite(train.image_path(1), keep_size_and_time=True)
    assert pretrain.ensure_damsm(plugins, cheap, root, train, test, "cpu") == cheap_entry  # times trusted: a hit
    capsys.readouterr()
    assert pretrain.ensure_damsm(plugins, cfg, root, train, test, "cpu") != first
    assert "training (not cached yet; the closest cached entry" in capsys.readouterr().out


def _channel_means(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"mean": x.float().mean(dim=(2, 3))}


def _real_features(plugins, cfg, root) -> tuple[np.ndarray, np.ndarray]:
    """The cached real features of the test split (the per-image channel means of its uint8 images), and the same
    computed from the images directly."""
    test = plugins.dataset("cub").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    ctx = EvalContext(plugins=plugins, cfg=cfg, dataset=test, split="test", device=torch.device("cpu"), root=root,
                      bank=None, resolution=test.stage_sizes[-1], num_images=len(test), seed=0)
    got = FeatureStream(ctx, "channel-means", _channel_means, ["mean"], {}).real("mean")
    direct = np.stack([real_to_uint8(test[i]["images"][-1][None]).float().mean(dim=(2, 3))[0].numpy()
                       for i in range(len(test))])
    return got, direct


def test_real_features_are_computed_again_after_the_images_change_in_place(data):
    plugins, ddir, root = data
    for strict in (False, True):
        cfg = _config(plugins, ddir, f"data.strict_cache={str(strict).lower()}")
        before, direct = _real_features(plugins, cfg, root)
        np.testing.assert_allclose(before, direct, rtol=1e-6)
        test = plugins.dataset("cub").build(cfg.data, "test", train=False, seed=0, cache_root=root)
        _rewrite(test.image_path(0), keep_size_and_time=strict)
        after, direct = _real_features(plugins, cfg, root)
        np.testing.assert_allclose(after, direct, rtol=1e-6)  # the negative's features, not the cached ones
        assert not np.allclose(after[0], before[0])
        train = plugins.dataset("cub").build(cfg.data, "train", train=True, seed=0, cache_root=root)
        _rewrite(train.image_path(0))  # another split's image: still a hit
        again, _ = _real_features(plugins, cfg, root)
        assert len(list_entries(root, "real-features")) == 2 * (1 + strict)


def test_cache_list_and_remove(tmp_path, results_root, capsys):
    def build(d: Path) -> None:
        (d / "stats.npz").write_bytes(b"x" * 2048)

    described = {"data": {"name": "cub", "data_dir": "/d", "files": {"files": "ab" * 16, "count": 3, "strict": False}},
                 "split": "test"}
    a = cached(results_root, "real-features", described, build)
    b = cached(results_root, "damsm", {"stage": "damsm", "imported": {"text": "cd" * 32}}, build)
    c = cached(results_root, "damsm", {"stage": "damsm", "data": {"name": "shapes", "data_dir": None}}, build)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = {f"{p.parent.name}/{p.name}": p for p in (a, b, c)}
    assert sorted(line.split()[0] for line in out[:-1]) == sorted(names)
    row = next(line for line in out if line.startswith(f"real-features/{a.name}"))
    size = f"{(2048 + (a / 'key.json').stat().st_size) / 1024:.1f} KiB"
    assert size in row and "cub /d; split test; 3 files (sizes and times) abababababab" in row
    assert "imported text sha256 cdcdcdcdcdcd" in next(line for line in out if b.name in line)
    assert out[-1].startswith("3 entries")

    assert main(["cache", "list", "--json", "--kind", "damsm"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(e["key"] for e in listed) == sorted([b.name, c.name])
    assert all(e["size"] == 2048 + (p / "key.json").stat().st_size for e in listed
               for p in [names[f"damsm/{e['key']}"]])

    assert main(["cache", "remove", f"real-features/{a.name}"]) == 0
    assert not a.exists() and lookup(results_root, "real-features", described) is None
    assert main(["cache", "remove", "damsm/nope"]) == 2
    assert "no cache entry 'damsm/nope'" in capsys.readouterr().err
    assert main(["cache", "remove", "--kind", "probe"]) == 2
    assert "kinds with entries: damsm" in capsys.readouterr().err
    assert main(["cache", "remove", "--kind", "damsm"]) == 0
    assert not b.exists() and not c.exists() and list_entries(results_root) == []


def test_the_data_check_under_strict_cache_sees_an_image_broken_with_size_and_time_kept(data):
    plugins, ddir, root = data
    strict, cheap = _config(plugins, ddir, "data.strict_cache=true"), _config(plugins, ddir)
    check_dataset(strict.data, root)
    check_dataset(cheap.data, root)
    image = sorted((ddir / "CUB_200_2011" / "images").rglob("*.jpg"))[0]
    st = image.stat()
    image.write_bytes(b"\0" * st.st_size)  # no longer an image; same size, time put back
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    check_dataset(cheap.data, root)  # the cached verdict: times are trusted
    with pytest.raises(DataError, match="unreadable or truncated image"):
        check_dataset(strict.data, root)
