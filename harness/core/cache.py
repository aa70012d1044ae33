"""Content-addressed caches: DAMSM encoders, real-image statistics, the shapes probe, data-validation verdicts.

An entry lives at ``<root>/.cache/<kind>/<key>/`` where ``key`` is a hash of everything that determines the
content, saved beside the content as ``key.json``. It is built in a temporary directory and renamed into place,
under a file lock, so two runs never build the same entry twice and a crash never leaves a half-written entry.
A key that depends on files holds ``files_digest`` of them: path, size and modification time of each (or its
sha256 with ``strict``), so an entry built from files that changed since is never found again.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from harness.util.atomic import write_file
from harness.util.hashing import stable_hash


def cache_key(description: Any) -> str:
    """A stable key for a JSON-able description (a string is used as is when it is already a key)."""
    if isinstance(description, str) and len(description) <= 64 and description.replace("-", "").isalnum():
        return description
    return stable_hash(description, length=20)


def entry_path(root: Path, kind: str, description: Any) -> Path:
    return cache_dir(root) / kind / cache_key(description)


def cache_dir(root: Path) -> Path:
    """``<root>/.cache``: every kind's entries."""
    return Path(root) / ".cache"


# ------------------------------------------------------------------------------------------------------
# What an entry was built from
# ------------------------------------------------------------------------------------------------------
def tree_files(directory: Path) -> list[Path]:
    """Every file under ``directory``, in a stable order (directories and names sorted)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        found += [Path(dirpath) / f for f in sorted(filenames)]
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(files: Iterable[Path], base: Optional[Path] = None, *, strict: bool = False) -> str:
    """A hash of each file's path (relative to ``base`` when given), size and modification time (ns): cheap, and
    any rewrite changes it. ``strict``: the sha256 of its bytes instead of the time, for file systems whose times
    cannot be trusted (a copy that keeps them, a rewrite that restores them). A missing file counts as missing."""
    prefix = os.path.join(os.fspath(base), "") if base is not None else ""
    rows = []
    for p in map(os.fspath, files):
        name = p[len(prefix):] if prefix and p.startswith(prefix) else p  # Path.relative_to, without its cost
        try:
            st = os.stat(p)
        except FileNotFoundError:
            rows.append((name, None, None))
            continue
        rows.append((name, st.st_size, _sha256(Path(p)) if strict else st.st_mtime_ns))
    return stable_hash(rows, length=32)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:  # a lock: opened, never written
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(root: Path, kind: str, description: Any, build: Callable[[Path], None]) -> Path:
    """Return the entry's directory, calling ``build(tmp_dir)`` to fill it first if it does not exist.

    ``description`` (JSON-able) is hashed into the key and saved as ``key.json`` inside the entry.
    """
    path = entry_path(root, kind, description)
    if (path / "key.json").exists():
        return path
    with _locked(path.with_name(path.name + ".lock")):
        if (path / "key.json").exists():  # built by another process while we waited
            return path
        sweep_stale(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            build(tmp)
            write_file(tmp / "key.json", json.dumps(description, indent=1, sort_keys=True, default=str))
            if path.exists():  # a stale, incomplete entry (no key.json)
                shutil.rmtree(path)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def sweep_stale(path: Path) -> list[Path]:
    """Remove what a killed builder or remover of entry ``path`` left beside it (``.<key>.tmp-*`` build directories,
    ``.<key>.removed-*`` ones); called under the entry's lock, so none of them is still in use. Returns them."""
    stale = [p for pattern in (f".{path.name}.tmp-*", f".{path.name}.removed-*") for p in path.parent.glob(pattern)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def lookup(root: Path, kind: str, description: Any) -> Path | None:
    """The entry's directory if it has been built, else None."""
    path = entry_path(root, kind, description)
    return path if (path / "key.json").exists() else None


# ------------------------------------------------------------------------------------------------------
# Listing and removing entries
# ------------------------------------------------------------------------------------------------------
@dataclass
class CacheEntry:
    """One built entry: ``kind``/``key``, its directory, total bytes, when it was built (``key.json``'s time,
    seconds since the epoch) and the description it was keyed on (``key.json``; None when unreadable)."""

    kind: str
    key: str
    path: Path
    size: int
    created: float
    description: Any

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.key}"


def _entry(path: Path) -> CacheEntry:
    key_file = path / "key.json"
    try:
        description = json.loads(key_file.read_text())
    except (OSError, ValueError):
        description = None
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return CacheEntry(path.parent.name, path.name, path, size, key_file.stat().st_mtime, description)


def list_entries(root: Path, kind: Optional[str] = None) -> list[CacheEntry]:
    """Every built entry under ``<root>/.cache`` (of one ``kind`` when given), by kind then build time; entries
    being built (temporary directories) and their locks are not listed."""
    base = cache_dir(root)
    kinds = [base / kind] if kind else (sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else [])
    entries = [_entry(p) for k in kinds if k.is_dir() for p in sorted(k.iterdir())
               if not p.name.startswith(".") and (p / "key.json").is_file()]
    return sorted(entries, key=lambda e: (e.kind, e.created, e.key))


def closest_entry(root: Path, kind: str, description: Any) -> Optional[tuple[CacheEntry, list[str]]]:
    """The built entry of ``kind`` whose description differs from ``description`` in the fewest keys (dotted paths
    into the nested descriptions), with those keys sorted; None when ``kind`` has no other readable entry. Tells a
    user why a cached result was not reused (e.g. the data's files changed: ``data.source.files``)."""
    from harness.config.protocol import flatten

    def flat(d: Any) -> dict[str, Any]:  # as key.json holds it
        d = json.loads(json.dumps(d, sort_keys=True, default=str))
        return flatten(d) if isinstance(d, dict) else {"": d}

    wanted = flat(description)
    best: Optional[tuple[CacheEntry, list[str]]] = None
    for entry in list_entries(root, kind):
        if entry.description is None:
            continue
        have = flat(entry.description)
        keys = sorted(k for k in wanted.keys() | have.keys() if wanted.get(k, have) != have.get(k, wanted))
        if keys and (best is None or len(keys) < len(best[1])):
            best = (entry, keys)
    return best


def remove_entry(entry: CacheEntry) -> None:
    """Delete ``entry`` under its lock (never while it is being built): it is renamed aside first, so it is gone at
    once for every reader, then deleted."""
    with _locked(entry.path.with_name(entry.path.name + ".lock")):
        if not entry.path.exists():
            return
        aside = entry.path.with_name(f".{entry.path.name}.removed-{time.time_ns()}")
        entry.path.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)  # the lock file stays: a process may be waiting on it
