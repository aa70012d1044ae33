"""The one writer: a target that is not a regular file is refused in one line before any work, a failed write is
one line naming the path and leaves neither a temporary file nor a changed target, an escaping OSError is one
line, and SIGTERM during a cache build stops cleanly without leaving the build directory behind."""
from __future__ import annotations

import errno
import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.cache import cached

REPO = Path(__file__).resolve().parents[1]

# the verbs that write a file the user names with --out; their other arguments need not exist (refused first)
VERBS = {
    "sample": ["sample", "somerun", "--caption", "a red square"],
    "table": ["table"],
    "report": ["report", "somerun"],
    "datasets captions": ["datasets", "captions", "shapes", "--preset", "test"],
}


def _fifo(p: Path) -> str:
    os.mkfifo(p)
    return "a FIFO"


def _symlink(p: Path) -> str:
    (p.parent / "pointed").write_text("keep me")
    p.symlink_to(p.parent / "pointed")
    return "a symbolic link"


def _directory(p: Path) -> str:
    p.mkdir()
    (p / "inside").write_text("keep me")
    return "a directory"


def _device(p: Path) -> str:  # a node of /dev/null's kind (character device 1:3), made where the test may
    os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return "a character device"


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
TARGETS = [pytest.param(_fifo, id="fifo"), pytest.param(_symlink, id="symlink"),
           pytest.param(_directory, id="directory"), pytest.param(_device, id="device", marks=AS_ROOT)]


def _state(p: Path) -> tuple:
    st = os.lstat(p)
    inside = sorted(x.name for x in p.iterdir()) if stat.S_ISDIR(st.st_mode) else None
    return stat.S_IFMT(st.st_mode), st.st_ino, inside


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("harness:")]


@pytest.mark.parametrize("make", TARGETS)
@pytest.mark.parametrize("verb", list(VERBS))
def test_special_target_is_refused_in_one_line_and_left_alone(verb, make, tmp_path, capsys):
    target = tmp_path / "out"
    kind = make(target)
    before = _state(target)
    rc = main([*VERBS[verb], "--out", str(target), "--results-dir", str(tmp_path / "results")])
    lines = _error_lines(capsys)
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0] == (f"harness: error: refusing to write {target}: it exists and is {kind}"
                        + (" (--force replaces the link itself)" if kind == "a symbolic link" else ""))
    assert _state(target) == before
    if kind == "a symbolic link":
        assert (tmp_path / "pointed").read_text() == "keep me"
    assert not (tmp_path / "results").exists()  # refused before any work


def test_force_replaces_the_link_not_the_file_it_points_to(tmp_path, capsys):
    target = tmp_path / "captions.csv"
    _symlink(target)
    rc = main([*VERBS["datasets captions"], "--out", str(target), "--force", "--results-dir", str(tmp_path / "r")])
    assert rc == 0, capsys.readouterr().err
    assert not target.is_symlink() and target.read_text().startswith("file,image_key,caption_index,")
    assert (tmp_path / "pointed").read_text() == "keep me"


def _fail_writes(monkeypatch, err: int) -> None:
    """The one writer's files fail with ``err`` after their first bytes (a disk that fills up mid-write)."""
    from harness.util import atomic

    class Failing(io.FileIO):
        def write(self, data):
            super().write(bytes(data)[:4])
            raise OSError(err, os.strerror(err))

    monkeypatch.setattr(atomic, "open", Failing, raising=False)


NAMED = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
         errno.EACCES: "permission denied", errno.ENOTDIR: "a part of the path is not a directory",
         errno.ELOOP: "too many symbolic links"}


@pytest.mark.parametrize("err", list(NAMED), ids=[errno.errorcode[e] for e in NAMED])
def test_failed_write_is_one_line_naming_the_path_and_leaves_the_old_file(err, tmp_path, monkeypatch, capsys):
    target = tmp_path / "out" / "captions.csv"
    target.parent.mkdir()
    target.write_text("old")
    _fail_writes(monkeypatch, err)
    rc = main([*VERBS["datasets captions"], "--out", str(target), "--results-dir", str(tmp_path / "r")])
    lines = _error_lines(capsys)
    assert rc == 2 and lines == [f"harness: error: cannot write {target}: {NAMED[err]} ({errno.errorcode[err]})"]
    assert [p.name for p in target.parent.iterdir()] == ["captions.csv"] and target.read_text() == "old"


@pytest.mark.parametrize("debug", ["", "1"])
def test_any_other_os_error_is_one_line_with_path_and_errno(debug, tmp_path, monkeypatch, capsys):
    target = tmp_path / "captions.csv"
    monkeypatch.setenv("HARNESS_DEBUG", debug)
    _fail_writes(monkeypatch, errno.EIO)
    rc = main([*VERBS["datasets captions"], "--out", str(target), "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("harness:")]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("harness: error: ") and "(EIO)" in lines[0], err
    assert ("Traceback" in err) == (debug == "1")
    assert [p.name for p in tmp_path.iterdir() if p.name != "r"] == []  # neither the file nor a temporary


@pytest.mark.parametrize("argv", [["table", "--all"], ["datasets", "captions", "shapes", "--preset", "test",
                                                       "--out", "x.csv"]], ids=["table", "datasets captions"])
def test_results_root_naming_a_file_is_one_line(argv, tmp_path, monkeypatch, capsys):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    monkeypatch.setenv("HARNESS_RESULTS", str(afile))
    monkeypatch.chdir(tmp_path)
    rc = main(argv)
    lines = _error_lines(capsys)
    assert rc == 2 and lines == [f"harness: error: the results root {afile} (HARNESS_RESULTS) exists and is not "
                                 f"a directory"]
    assert afile.read_text() == "not a folder" and not (tmp_path / "x.csv").exists()


def test_write_file_removes_its_temporary_when_the_payload_raises(tmp_path):
    from harness.util.atomic import write_file

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def half(f):
        f.write(b"new but")
        raise RuntimeError("the writer's own failure")

    with pytest.raises(RuntimeError):
        write_file(target, half)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"] and target.read_bytes() == b"old"


def test_write_error_is_an_os_error_with_the_errno(tmp_path, monkeypatch):
    from harness.util.atomic import WriteError, write_file

    _fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as e:
        write_file(tmp_path / "x", b"abcdefgh")
    assert isinstance(e.value, WriteError) and e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "x")


def test_stale_cache_build_directories_are_swept_at_the_next_build(tmp_path):
    def build(d: Path) -> None:
        (d / "content.txt").write_text("built")

    entry = cached(tmp_path, "kind", "abc", build)
    stale = [entry.with_name(".def.tmp-x1y2z3"), entry.with_name(".def.removed-123")]  # left by killed processes
    other = entry.with_name(".ghi.tmp-q")  # another key's build: not this lock's to sweep
    for d in (*stale, other):
        d.mkdir()
        (d / "part").write_text("partial")
    cached(tmp_path, "kind", "def", build)
    assert sorted(p.name for p in entry.parent.iterdir()) == [".ghi.tmp-q", "abc", "abc.lock", "def", "def.lock"]


def test_sigterm_during_a_cache_build_leaves_no_build_directory(tmp_path):
    """`harness train` of a built-in method on shapes/test trains its DAMSM into a cache build directory first;
    SIGTERM while that directory exists stops like Ctrl-C (exit 143 = 128 + SIGTERM, one line) and removes it."""
    root = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=str(REPO), HARNESS_RESULTS=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "harness", "train", "--plugins", "attngan", "--dataset", "shapes",
                             "--preset", "test"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        building: list[Path] = []
        while not building and proc.poll() is None:
            building = list((root / ".cache").glob("*/.*.tmp-*"))
            time.sleep(0.02)
        assert building, "the command ended before its cache build began"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line.split("harness: ", 1)[1] for line in err.splitlines() if "harness: " in line]  # after a bar
    assert proc.returncode == 143 and len(lines) == 1, err
    assert lines[0].startswith("interrupted: run ") and "resume with `harness train --resume " in lines[0], err
    assert "Traceback" not in err
    assert not [p for p in (root / ".cache").rglob("*") if ".tmp-" in p.name]


def test_train_whose_run_cannot_be_written_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    from core_tiny_method import TinyMethod
    from harness.contract.plugins import build_plugins

    plugins = build_plugins(extra=[TinyMethod(tmp_path / "tiny")])
    root = tmp_path / "results"
    _fail_writes(monkeypatch, errno.ENOSPC)  # config.yaml, the run's first file, meets a full disk
    rc = main(["train", "--plugins", "tinygan", "--dataset", "shapes", "--preset", "test", "--results-dir", str(root)],
              plugins=plugins)
    lines = _error_lines(capsys)
    assert rc == 2 and len(lines) == 1 and "config.yaml: no space left on the device (ENOSPC)" in lines[0], lines
    assert not root.exists() or [p.name for p in root.iterdir() if not p.name.startswith(".")] == []
