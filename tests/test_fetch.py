"""Downloads (harness.core.fetch) against a loopback server on 127.0.0.1, and safe unpacking (harness.core.archive)."""
import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from fetch_server import LoopbackServer, Route
from harness.contract.types import Download
from harness.core.archive import unpack
from harness.core.fetch import FetchSettings, download, drive_form_target, mirror_url, parse_digest
from harness.util.errors import FetchError

BODY = os.urandom(64 * 1024) + b"tail"  # not a multiple of the chunk
SHA = hashlib.sha256(BODY).hexdigest()
CHUNK = 4096


def _settings(**kw) -> FetchSettings:
    base = dict(timeout=0.5, retries=1, backoff=0.0, chunk=CHUNK, progress=False)
    return FetchSettings(**{**base, **kw})


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def _src(server, path="/w.bin", **kw) -> Download:
    return Download(filename="w.bin", urls=(server.url(path),), **{"digest": f"sha256:{SHA}", **kw})


def _left(d) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_full_download_is_verified_and_renamed_into_place(server, tmp_path):
    server.routes["/w.bin"] = Route(BODY)
    r = download(_src(server, size=len(BODY)), tmp_path, _settings())
    assert r.path == tmp_path / "w.bin" and r.path.read_bytes() == BODY
    assert r.status == "verified" and _left(tmp_path) == ["w.bin"]
    assert server.routes["/w.bin"].sent == len(BODY)


def test_a_cut_connection_resumes_with_range(server, tmp_path):
    half = len(BODY) // 2 + 123
    route = server.routes["/w.bin"] = Route(BODY, cut_after=half)
    r = download(_src(server), tmp_path, _settings())
    assert r.path.read_bytes() == BODY
    assert [h.get("Range") for h in route.requests] == [None, f"bytes={half}-"]
    assert route.sent - len(BODY) <= CHUNK  # bytes fetched twice


def test_a_server_that_ignores_range_restarts_from_zero(server, tmp_path):
    route = server.routes["/w.bin"] = Route(BODY, cut_after=1000, ranges=False)
    assert download(_src(server), tmp_path, _settings()).path.read_bytes() == BODY
    assert route.requests[1].get("Range") == "bytes=1000-"


def test_a_wrong_digest_removes_the_file_and_names_both_digests(server, tmp_path):
    server.routes["/w.bin"] = Route(BODY)
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(FetchError) as e:
        download(_src(server, digest=f"sha256:{wrong}"), tmp_path, _settings())
    msg = str(e.value)
    assert "\n" not in msg and f"expected {wrong}" in msg and f"received {SHA}" in msg
    assert _left(tmp_path) == []


def test_a_wrong_size_is_refused_before_hashing(server, tmp_path):
    server.routes["/w.bin"] = Route(BODY)
    with pytest.raises(FetchError, match=f"gave {len(BODY)} bytes, expected {len(BODY) + 1}"):
        download(_src(server, size=len(BODY) + 1), tmp_path, _settings())
    assert _left(tmp_path) == []


@pytest.mark.parametrize("route, words", [
    (None, "HTTP 404"),
    (Route(status=500), "HTTP 500"),
    (Route(BODY, stall=True), "within the timeout"),
    (Route(html="<html><body>Sign in</body></html>"), "HTML page instead of the file"),
])
def test_failures_are_one_line_and_leave_no_partial_file(server, tmp_path, route, words):
    if route is not None:
        server.routes["/w.bin"] = route
    with pytest.raises(FetchError) as e:
        download(_src(server), tmp_path, _settings())
    msg = str(e.value)
    assert "\n" not in msg and words in msg and server.url("/w.bin") in msg
    assert _left(tmp_path) == []


def test_a_transient_failure_is_retried(server, tmp_path):
    route = server.routes["/w.bin"] = Route(status=503)
    with pytest.raises(FetchError):
        download(_src(server), tmp_path, _settings(retries=2))
    assert len(route.requests) == 3  # the first attempt and two retries
    route404 = server.routes["/gone.bin"] = Route(status=404)
    with pytest.raises(FetchError):
        download(_src(server, "/gone.bin"), tmp_path, _settings(retries=2))
    assert len(route404.requests) == 1  # a 404 is not retried


def test_the_next_address_is_tried_after_a_permanent_failure(server, tmp_path):
    server.routes["/b.bin"] = Route(BODY)
    src = Download("w.bin", (server.url("/a.bin"), server.url("/b.bin")), digest=f"sha256:{SHA}")
    r = download(src, tmp_path, _settings())
    assert r.url == server.url("/b.bin") and r.path.read_bytes() == BODY


def test_offline_fails_before_any_connection(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    src = Download("w.bin", ("http://127.0.0.1:9/w.bin",), digest=f"sha256:{SHA}")
    with pytest.raises(FetchError) as e:
        download(src, tmp_path / "d", FetchSettings.from_env())
    assert "offline" in str(e.value) and "HARNESS_OFFLINE" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "d").exists()


def test_a_mirror_keeps_the_original_paths(server, tmp_path):
    route = server.routes["/m/files.example.org/models/w.bin"] = Route(BODY)
    src = Download("w.bin", ("https://files.example.org/models/w.bin",), digest=f"sha256:{SHA}")
    r = download(src, tmp_path, _settings(mirror=server.url("/m/")))
    assert r.path.read_bytes() == BODY and route.sent == len(BODY)
    assert mirror_url("https://drive.google.com/uc?export=download&id=AbC", "http://m") == \
        "http://m/drive.google.com/uc/AbC"


def test_an_unreachable_mirror_fails_in_one_line(tmp_path):
    src = Download("w.bin", ("https://files.example.org/w.bin",), digest=f"sha256:{SHA}")
    with LoopbackServer() as s:
        dead = s.url("/")  # the port is closed once the server stops
    with pytest.raises(FetchError) as e:
        download(src, tmp_path, _settings(mirror=dead))
    assert "\n" not in str(e.value) and dead in str(e.value)
    assert _left(tmp_path) == []
    with pytest.raises(FetchError):  # a folder the download made is removed with it
        download(src, tmp_path / "a" / "b", _settings(mirror=dead))
    assert _left(tmp_path) == []


def test_a_refused_connection_is_not_retried(tmp_path, capsys):
    with LoopbackServer() as s:
        dead = s.url("/w.bin")  # nothing listens there once the server stops
    src = Download("w.bin", (dead,), digest=f"sha256:{SHA}")
    with pytest.raises(FetchError) as e:
        download(src, tmp_path, _settings(retries=3))
    assert "refused" in str(e.value).lower() and "\n" not in str(e.value)
    assert "retrying" not in capsys.readouterr().err  # one line: no server is there to come back


def test_a_file_in_place_is_verified_and_used_without_a_connection(tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    (tmp_path / "w.bin").write_bytes(BODY)  # put there by hand, as the offline message says
    src = Download("w.bin", ("http://127.0.0.1:9/w.bin",), digest=f"sha256:{SHA}")
    r = download(src, tmp_path, _settings(offline=True))
    assert (r.path, r.status) == (tmp_path / "w.bin", "verified")
    (tmp_path / "w.bin").write_bytes(b"not the file")
    with pytest.raises(FetchError) as e:
        download(src, tmp_path, _settings(offline=True))
    received = hashlib.sha256(b"not the file").hexdigest()
    assert f"expected {SHA}, received {received}" in str(e.value) and str(tmp_path / "w.bin") in str(e.value)
    assert (tmp_path / "w.bin").read_bytes() == b"not the file"  # the user's file is not removed


def test_a_wrong_file_in_place_is_fetched_again(server, tmp_path, capsys):
    server.routes["/w.bin"] = Route(BODY)
    (tmp_path / "w.bin").write_bytes(b"stale")
    r = download(_src(server), tmp_path, _settings())
    assert r.path.read_bytes() == BODY and r.status == "verified"
    assert "fetching it again" in capsys.readouterr().err


@pytest.mark.parametrize("mirror", ["http://[::1", "file:///etc", "notaurl"])
def test_a_bad_mirror_address_is_one_line(mirror, monkeypatch):
    monkeypatch.setenv("HARNESS_MIRROR", mirror)
    with pytest.raises(FetchError) as e:
        FetchSettings.from_env()
    assert repr(mirror) in str(e.value) and "\n" not in str(e.value)


def test_a_drive_confirmation_form_is_followed(server, tmp_path):
    form = ('<html><form id="download-form" action="/download" method="get">'
            '<input type="hidden" name="id" value="F1"><input type="hidden" name="confirm" value="t">'
            '<input type="submit" value="Download anyway"></form></html>')
    server.routes["/uc"] = Route(html=form)
    route = server.routes["/download"] = Route(BODY)
    r = download(_src(server, "/uc?id=F1"), tmp_path, _settings())
    assert r.path.read_bytes() == BODY and len(route.requests) == 1
    assert drive_form_target(form, "https://x.org/uc?id=F1") == "https://x.org/download?id=F1&confirm=t"
    assert drive_form_target("<form action='/a'><input type='hidden' name='q' value='1'></form>", "http://x") is None


def test_digest_syntax():
    assert parse_digest("sha256:" + "A" * 64) == ("sha256", "a" * 64)
    for bad in ("sha256:abc", "crc:" + "0" * 8, "0" * 64):
        with pytest.raises(ValueError):
            parse_digest(bad)


# ---------------------------------------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------------------------------------
def _tar(path, members):
    """members: (name, bytes) files, or (name, "->target") symlinks."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            if isinstance(data, str):
                info.external_attr = (0o120777 << 16)
                zf.writestr(info, data[2:])
            else:
                zf.writestr(info, data)
    return path


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("make", [_tar, _zip])
@pytest.mark.parametrize("bad, why", [
    ("../evil.txt", "climbs out"),
    ("ok/../../evil.txt", "climbs out"),
    ("/tmp/evil-absolute.txt", "absolute path"),
    ("link", "symlink"),
])
def test_unsafe_members_refuse_the_whole_archive(tmp_path, make, bad, why):
    data = "->/etc/passwd" if bad == "link" else b"evil"
    arc = make(tmp_path / ("a.tgz" if make is _tar else "a.zip"), [("good/first.txt", b"fine"), (bad, data)])
    out = tmp_path / "out"
    before = _tree(tmp_path)
    with pytest.raises(FetchError) as e:
        unpack(arc, out)
    assert why in str(e.value) and repr(bad) in str(e.value) and "\n" not in str(e.value)
    assert _tree(tmp_path) == sorted(before + ["out"]) and _tree(out) == []  # nothing written, in or outside
    assert not os.path.exists("/tmp/evil-absolute.txt")


@pytest.mark.parametrize("make", [_tar, _zip])
def test_strip_into_and_merge(tmp_path, make):
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "old.jpg").write_bytes(b"kept")
    arc = make(tmp_path / ("a.tgz" if make is _tar else "a.zip"),
               [("top/x/1.jpg", b"one"), ("top/2.jpg", b"two"), ("__MACOSX/top/._2.jpg", b"fork")])
    assert unpack(arc, out, strip="top/", into="images") == 2
    assert _tree(out) == ["images", "images/2.jpg", "images/old.jpg", "images/x", "images/x/1.jpg"]
    assert (out / "images" / "x" / "1.jpg").read_bytes() == b"one"


def test_a_damaged_archive_writes_nothing(tmp_path):
    arc = _tar(tmp_path / "a.tgz", [(f"f{i}.bin", os.urandom(20000)) for i in range(5)])
    arc.write_bytes(arc.read_bytes()[: arc.stat().st_size // 2])
    with pytest.raises(FetchError, match="damaged archive"):
        unpack(arc, tmp_path / "out")
    assert _tree(tmp_path / "out") == []
    (tmp_path / "x.bin").write_bytes(b"neither")
    with pytest.raises(FetchError, match="neither a tar nor a zip"):
        unpack(tmp_path / "x.bin", tmp_path / "out")
