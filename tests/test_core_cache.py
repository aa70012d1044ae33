"""Content-addressed caches: built once, atomically, under a lock (DESIGN.md §10 "Caches")."""
from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from harness.core.cache import cache_key, cached, entry_path, lookup


def test_built_once_then_reused(tmp_path):
    calls = []

    def build(d: Path) -> None:
        calls.append(d)
        (d / "stats.json").write_text(json.dumps({"mu": 1}))

    desc = {"dataset": "shapes", "split": "test", "size": 64}
    p1 = cached(tmp_path, "real_stats", desc, build)
    p2 = cached(tmp_path, "real_stats", {"size": 64, "split": "test", "dataset": "shapes"}, build)
    assert p1 == p2 == entry_path(tmp_path, "real_stats", desc) and len(calls) == 1
    assert p1.parent == tmp_path / ".cache" / "real_stats"
    assert json.loads((p1 / "key.json").read_text()) == desc
    assert lookup(tmp_path, "real_stats", desc) == p1
    assert lookup(tmp_path, "real_stats", {"other": 1}) is None
    assert cache_key(desc) != cache_key({**desc, "size": 128})


def test_a_failed_build_leaves_nothing(tmp_path):
    def build(d: Path) -> None:
        (d / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached(tmp_path, "probe", "k1", build)
    kind_dir = tmp_path / ".cache" / "probe"
    assert [p.name for p in kind_dir.iterdir() if not p.name.endswith(".lock")] == []
    assert lookup(tmp_path, "probe", "k1") is None


def test_a_stale_incomplete_entry_is_rebuilt(tmp_path):
    stale = entry_path(tmp_path, "damsm", "k2")
    stale.mkdir(parents=True)
    (stale / "partial.pth").write_text("old")
    p = cached(tmp_path, "damsm", "k2", lambda d: (d / "text.pth").write_text("new"))
    assert p == stale and (p / "text.pth").read_text() == "new" and not (p / "partial.pth").exists()


def _build_in_child(root: str, counter: str, queue) -> None:
    def build(d: Path) -> None:
        with open(counter, "a") as f:
            f.write("built\n")
        time.sleep(0.5)  # long enough for the other process to arrive and wait on the lock
        (d / "data").write_text("x")

    queue.put(str(cached(Path(root), "damsm", {"k": 3}, build)))


def test_two_processes_never_build_the_same_entry_twice(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    counter = tmp_path / "counter"
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path), str(counter), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    paths = {queue.get(timeout=5) for _ in procs}
    assert len(paths) == 1 and counter.read_text() == "built\n"
    assert (Path(paths.pop()) / "data").read_text() == "x"


def test_closest_entry_names_the_keys_that_kept_a_description_from_a_hit(tmp_path):
    from harness.core.cache import cached, closest_entry

    def build(out):
        (out / "x").write_text("x")

    assert closest_entry(tmp_path, "damsm", {"a": 1}) is None  # nothing cached
    near = cached(tmp_path, "damsm", {"data": {"files": "d1", "count": 4}, "lr": 0.1}, build)
    cached(tmp_path, "damsm", {"data": {"files": "d2", "count": 4}, "lr": 0.2, "extra": True}, build)
    cached(tmp_path, "other", {"data": {"files": "d3", "count": 3}, "lr": 0.2}, build)  # closer, another kind
    entry, keys = closest_entry(tmp_path, "damsm", {"data": {"files": "d3", "count": 3}, "lr": 0.1})
    assert entry.path == near and keys == ["data.count", "data.files"]
