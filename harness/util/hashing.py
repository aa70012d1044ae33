"""Stable hashes of JSON-able values: cache keys, protocol ids, data-validation verdicts."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys; non-JSON values
    by ``str``): a key that does not change between runs or machines."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
