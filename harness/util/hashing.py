"""Stable hashes of JSON-able values (cache keys, protocol ids, data-validation verdicts) and file digests."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Hashing a large file takes seconds; remember digests per (path, algorithm, size, mtime).
_DIGESTS: dict[tuple[str, str, int, int], str] = {}


def stable_hash(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys; non-JSON values
    by ``str``): a key that does not change between runs or machines."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (cached per path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), algorithm, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
