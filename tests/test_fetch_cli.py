"""``harness fetch``: weight files and a CUB-layout data set from a loopback server on 127.0.0.1, offline mode,
an unreachable mirror, and the names checked before anything is downloaded."""
import dataclasses
import hashlib
import io
import socket
import tarfile
import zipfile

import pytest

import harness.core.weights
import harness.data.registry
import harness.runs.fetch
from fetch_server import LoopbackServer, Route
from harness.cli import main
from harness.contract.plugins import build_plugins, hookimpl
from harness.contract.types import Download, WeightFile
from harness.core.fetch import FetchSettings

CONTENT = b"pretend these are weights" * 100
SHA = hashlib.sha256(CONTENT).hexdigest()


class _FastSettings(FetchSettings):
    """Short timeouts and no retries, for the failure cases."""

    @classmethod
    def from_env(cls, **kw):
        return dataclasses.replace(FetchSettings.from_env(**kw), timeout=0.5, retries=0, backoff=0.0, progress=False)


@pytest.fixture(autouse=True)
def fast(monkeypatch, tmp_path):
    monkeypatch.setattr(harness.runs.fetch, "FetchSettings", _FastSettings)
    monkeypatch.setenv("HARNESS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def _weight_plugin(url: str, digest: str = SHA):
    class P:
        @hookimpl
        def harness_weight_files(self):
            return [WeightFile("tiny", "test weights", ["tiny.pth"], "sha256", SHA,
                               downloads=[Download("tiny.pth", (url,), digest=f"sha256:{digest}")])]
    return build_plugins([P()], entry_points=False)


def test_fetch_a_weight_file_then_it_is_present(server, tmp_path, capsys):
    route = server.routes["/tiny.pth"] = Route(CONTENT)
    plugins = _weight_plugin(server.url("/tiny.pth"))
    assert main(["fetch", "tiny"], plugins=plugins) == 0
    assert (tmp_path / "weights" / "tiny.pth").read_bytes() == CONTENT
    assert "tiny: present at" in capsys.readouterr().out
    assert main(["fetch", "tiny"], plugins=plugins) == 0  # already there: not fetched again
    assert len(route.requests) == 1
    assert main(["weights"], plugins=plugins) == 0
    assert "tiny: present at" in capsys.readouterr().out


def test_a_wrong_digest_fails_in_one_line_and_leaves_nothing(server, tmp_path, capsys):
    server.routes["/tiny.pth"] = Route(b"not the weights")
    assert main(["fetch", "tiny"], plugins=_weight_plugin(server.url("/tiny.pth"))) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"expected {SHA}" in err
    assert f"received {hashlib.sha256(b'not the weights').hexdigest()}" in err
    assert not (tmp_path / "weights").exists()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_offline_fails_at_once_without_a_connection(tmp_path, monkeypatch, capsys, how):
    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    argv = ["fetch", "tiny"]
    if how == "env":
        monkeypatch.setenv("HARNESS_OFFLINE", "1")
    else:
        argv.append("--offline")
    assert main(argv, plugins=_weight_plugin("http://127.0.0.1:9/tiny.pth")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "offline" in err and "tiny.pth" in err
    assert not (tmp_path / "weights").exists()


def test_an_unreachable_mirror_fails_in_one_line_and_leaves_nothing(tmp_path, capsys):
    with LoopbackServer() as s:
        dead = s.url("/mirror")
    assert main(["fetch", "tiny", "--mirror", dead], plugins=_weight_plugin("https://files.example.org/tiny.pth")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{dead}/files.example.org/tiny.pth" in err
    assert not (tmp_path / "weights").exists()
    data = tmp_path / "data" / "birds"
    argv = ["fetch", "cub", "--data-dir", str(data), "--mirror", dead]
    assert main(argv, plugins=build_plugins(entry_points=False)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{dead}/data.caltech.edu/records/" in err
    assert not (tmp_path / "data").exists()


def test_names_are_checked_before_any_download(server, tmp_path, capsys):
    route = server.routes["/tiny.pth"] = Route(CONTENT)
    plugins = _weight_plugin(server.url("/tiny.pth"))
    assert main(["fetch", "tiny", "nope"], plugins=plugins) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "tiny" in err and "cub" in err and "shapes" not in err.split("installed:")[1]
    assert main(["fetch", "tiny", "cub"], plugins=plugins) == 2
    assert "needs --data-dir" in capsys.readouterr().err
    assert main(["fetch"], plugins=plugins) == 2
    assert "--all-weights" in capsys.readouterr().err
    assert route.requests == []


def test_all_weights_carries_on_past_failures_and_names_each_at_the_end(server, tmp_path, capsys):
    # everything through the loopback mirror: the built-in weight files' addresses are answered 404 there
    bad = hashlib.sha256(b"not the weights").hexdigest()
    server.routes["/files.example.org/a.pth"] = Route(b"not the weights")  # fails its digest
    server.routes["/files.example.org/b.pth"] = Route(CONTENT)

    class P:
        @hookimpl
        def harness_weight_files(self):
            return [WeightFile(n, "test weights", [f"{n}.pth"], "sha256", SHA,
                               downloads=[Download(f"{n}.pth", (f"http://files.example.org/{n}.pth",),
                                                   digest=f"sha256:{SHA}")]) for n in ("a", "b", "c")]

    plugins = build_plugins([P()], entry_points=False)
    expected = sorted(n for n, w in plugins.weight_files().items() if w.downloads and n != "b")
    assert main(["fetch", "--all-weights", "--mirror", server.url("")], plugins=plugins) == 2
    assert (tmp_path / "weights" / "b.pth").read_bytes() == CONTENT  # fetched after a's failure
    assert not (tmp_path / "weights" / "a.pth").exists() and not (tmp_path / "weights" / "c.pth").exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{len(expected)} of {len(plugins.weight_files())} failed: " in err
    tail = "; " + err.split(" failed: ", 1)[1]
    starts = sorted((tail.index(f"; {n}: "), n) for n in expected)  # each failure named once, in name order
    assert [n for _, n in starts] == expected and "; b: " not in tail
    parts = {n: tail[i:j] for (i, n), (j, _) in zip(starts, starts[1:] + [(len(tail), "")])}
    assert f"received {bad}" in parts["a"] and "404" in parts["c"]


# ---------------------------------------------------------------------------------------------------------
# A CUB-layout data set: the images archive and AttnGAN-style metadata with a nested text.zip
# ---------------------------------------------------------------------------------------------------------
def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(root, under):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / under).rglob("*")) if p.is_file()}


def test_fetch_cub_unpacks_the_layout_and_inspects_it(server, tmp_path, shapes_cub_dir, monkeypatch, capsys):
    images = _tgz({**_files(shapes_cub_dir, "CUB_200_2011"), "attributes.txt": b"1 has_bill_shape::dagger\n"})
    meta = {f"birds/{k}": v for k, v in {**_files(shapes_cub_dir, "train"), **_files(shapes_cub_dir, "test")}.items()}
    meta["birds/text.zip"] = _zip(_files(shapes_cub_dir, "text"))
    meta["__MACOSX/birds/._train"] = b"resource fork"
    birds = _zip(meta)
    server.routes["/CUB_200_2011.tgz"] = Route(images)
    server.routes["/uc"] = Route(birds)
    monkeypatch.setattr(harness.data.registry, "CUB_DOWNLOADS", [
        Download("CUB_200_2011.tgz", (server.url("/CUB_200_2011.tgz"),),
                 digest=f"sha256:{hashlib.sha256(images).hexdigest()}", size=len(images)),
        Download("birds.zip", (server.url("/uc?export=download&id=X"),), strip="birds/", inner=("text.zip",)),
    ])
    data = tmp_path / "birds"
    assert main(["fetch", "cub", "--data-dir", str(data)], plugins=build_plugins(entry_points=False)) == 0
    out = capsys.readouterr().out
    for sub in ("CUB_200_2011", "train", "test", "text"):
        assert _files(data, sub) == _files(shapes_cub_dir, sub), sub
    assert not (data / "text.zip").exists() and not (data / "__MACOSX").exists()
    assert sorted(p.name for p in (data / ".harness-fetch").iterdir()) == ["CUB_200_2011.tgz.done", "birds.zip.done"]
    assert "images     train 24, test 12" in out and "birds.zip (unverified: no published digest)" in out
    # a second run fetches nothing and inspects again
    assert main(["fetch", "cub", "--data-dir", str(data)], plugins=build_plugins(entry_points=False)) == 0
    assert "already unpacked" in capsys.readouterr().out
    assert [len(r.requests) for r in server.routes.values()] == [1, 1]


def test_offline_cub_names_every_archive_and_uses_those_put_in_place(tmp_path, shapes_cub_dir, monkeypatch, capsys):
    images = _tgz(_files(shapes_cub_dir, "CUB_200_2011"))
    birds = _zip({**{f"birds/{k}": v for k, v in {**_files(shapes_cub_dir, "train"),
                                                   **_files(shapes_cub_dir, "test")}.items()},
                  "birds/text.zip": _zip(_files(shapes_cub_dir, "text"))})
    digest = f"sha256:{hashlib.sha256(images).hexdigest()}"
    monkeypatch.setattr(harness.data.registry, "CUB_DOWNLOADS", [
        Download("CUB_200_2011.tgz", ("http://127.0.0.1:9/CUB_200_2011.tgz",), digest=digest, size=len(images)),
        Download("birds.zip", ("http://127.0.0.1:9/uc?id=X",), strip="birds/", inner=("text.zip",)),
    ])
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    data = tmp_path / "birds"
    plugins = build_plugins(entry_points=False)
    assert main(["fetch", "cub", "--data-dir", str(data)], plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"harness: error: cub: not downloaded: offline (HARNESS_OFFLINE=1 or --offline); put "
                   f"CUB_200_2011.tgz (from http://127.0.0.1:9/CUB_200_2011.tgz), birds.zip (from "
                   f"http://127.0.0.1:9/uc?id=X) into {data / '.harness-fetch'} by hand, then run this again")
    (data / ".harness-fetch").mkdir(parents=True)
    (data / ".harness-fetch" / "CUB_200_2011.tgz").write_bytes(images)
    (data / ".harness-fetch" / "birds.zip").write_bytes(birds)
    assert main(["fetch", "cub", "--data-dir", str(data)], plugins=plugins) == 0
    for sub in ("CUB_200_2011", "train", "test", "text"):
        assert _files(data, sub) == _files(shapes_cub_dir, sub), sub
    assert f"CUB_200_2011.tgz ({digest})" in capsys.readouterr().out


def test_a_missing_layout_names_the_fetch_command(tmp_path, capsys):
    assert main(["datasets", "inspect", "cub", "--data-dir", str(tmp_path / "none")]) != 0
    assert f"harness fetch cub --data-dir {tmp_path / 'none'}" in capsys.readouterr().out


def test_fetch_coco_merges_both_image_zips_and_unpacks_the_inner_text_zips(server, tmp_path, monkeypatch, capsys):
    # the layout AttnGAN's loader reads: images/ from COCO's train2014.zip and val2014.zip (merged, as DM-GAN
    # does), the splits, captions.pickle and the two caption-text zips from AttnGAN's coco.zip
    from harness.data.safe_pickle import load_pickle
    from harness.data.writer import write_dataset

    written = write_dataset(build_plugins(), "shapes", tmp_path / "written", layout="coco",
                            overrides=["data.shapes.train_images=6", "data.shapes.test_images=4"])
    keys = {s: list(load_pickle(written / s / "filenames.pickle")) for s in ("train", "test")}
    image_zips = {name: _zip({f"{name}/{k}.jpg": (written / "images" / f"{k}.jpg").read_bytes() for k in keys[s]})
                  for name, s in (("train2014", "train"), ("val2014", "test"))}
    text_zips = {name: _zip({f"text/{k}.txt": (written / "text" / f"{k}.txt").read_bytes() for k in keys[s]})
                 for name, s in (("train2014-text.zip", "train"), ("val2014-text.zip", "test"))}
    meta = {f"coco/{k}": v for k, v in {**_files(written, "train"), **_files(written, "test")}.items()}
    meta.update({f"coco/{name}": data for name, data in text_zips.items()})
    meta["coco/captions.pickle"] = (written / "captions.pickle").read_bytes()
    served = {"coco.zip": _zip(meta), **{f"{name}.zip": data for name, data in image_zips.items()}}
    downloads = []  # the declared downloads (their strip, into and inner), served here with our bytes' digests
    for d in harness.data.registry.COCO_DOWNLOADS:
        server.routes[f"/{d.filename}"] = Route(served[d.filename])
        digest = d.digest and f"md5:{hashlib.md5(served[d.filename]).hexdigest()}"
        downloads.append(dataclasses.replace(d, urls=(server.url(f"/{d.filename}"),), digest=digest, size=None))
    monkeypatch.setattr(harness.data.registry, "COCO_DOWNLOADS", downloads)
    data = tmp_path / "coco"
    assert main(["fetch", "coco", "--data-dir", str(data)], plugins=build_plugins(entry_points=False)) == 0
    out = capsys.readouterr().out
    for sub in ("images", "train", "test", "text"):
        assert _files(data, sub) == _files(written, sub), sub
    assert (data / "captions.pickle").read_bytes() == (written / "captions.pickle").read_bytes()
    assert not list(data.glob("*.zip")) and not (data / "train2014").exists()
    assert "images     train 6, test 4" in out and "coco.zip (unverified: no published digest)" in out
