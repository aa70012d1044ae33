"""Content-addressed caches (DESIGN.md §10 "Caches"): DAMSM encoders, real-image statistics, the shapes probe,
data-validation verdicts.

An entry lives at ``<root>/.cache/<kind>/<key>/`` where ``key`` is a hash of everything that determines the
content. It is built in a temporary directory and renamed into place, under a file lock, so two runs never
build the same entry twice and a crash never leaves a half-written entry.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.util.hashing import stable_hash


def cache_key(description: Any) -> str:
    """A stable key for a JSON-able description (a string is used as is when it is already a key)."""
    if isinstance(description, str) and len(description) <= 64 and description.replace("-", "").isalnum():
        return description
    return stable_hash(description, length=20)


def entry_path(root: Path, kind: str, description: Any) -> Path:
    return Path(root) / ".cache" / kind / cache_key(description)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as f:
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
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            build(tmp)
            (tmp / "key.json").write_text(json.dumps(description, indent=1, sort_keys=True, default=str))
            if path.exists():  # a stale, incomplete entry (no key.json)
                shutil.rmtree(path)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def lookup(root: Path, kind: str, description: Any) -> Path | None:
    """The entry's directory if it has been built, else None."""
    path = entry_path(root, kind, description)
    return path if (path / "key.json").exists() else None
