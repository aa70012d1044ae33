"""A restricted unpickler for the AttnGAN metadata pickles (``birds.zip``, ``coco.zip``).

`filenames.pickle`, `class_info.pickle` and `captions.pickle` were written by Python 2 with protocol 2; their
byte strings (SHORT_BINSTRING / BINSTRING opcodes) are decoded as latin-1. They hold only lists, tuples, dicts,
strings and numbers, sometimes numpy arrays or numpy scalars. Every other global is refused, so a tampered
file from a re-hosted copy cannot run code: the error names the file and the type it tried to load.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from harness.util.atomic import write_file
from harness.util.errors import DataError

# The only globals a metadata pickle may name: numpy's array/scalar reconstruction, under the module names
# numpy 1.x / 2.x and Python 2 wrote them with.
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")


def _numpy_global(name: str) -> Any:
    multiarray = getattr(np, "_core", None)
    multiarray = getattr(multiarray, "multiarray", None) if multiarray is not None else None
    if multiarray is None:  # pragma: no cover  (numpy 1.x)
        multiarray = np.core.multiarray  # type: ignore[attr-defined]
    table = {
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "ndarray": np.ndarray,
        "dtype": np.dtype,
    }
    return table.get(name)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` limited to the one use a protocol-2 bytes object makes of it."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting plain containers, strings, numbers and numpy arrays only."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES:
            obj = _numpy_global(name)
            if obj is not None:
                return obj
        if module == "_codecs" and name == "encode":  # how Python 3 writes bytes at protocol 2
            return _latin1_bytes
        if module in ("__builtin__", "builtins") and name in ("set", "frozenset", "complex"):
            return {"set": set, "frozenset": frozenset, "complex": complex}[name]
        raise DataError(f"{self.source}: refused to load type {module}.{name} (a metadata pickle may hold only "
                        f"lists, tuples, dicts, strings, numbers and numpy arrays)")


def load_pickle(path: Path) -> Any:
    """Load a metadata pickle with the restricted unpickler (Python 2 strings as latin-1)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), str(path)).load()
    except DataError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def dump_pickle(obj: Any, path: Path) -> None:
    """Write ``obj`` with protocol 2 (what the reference code writes), atomically."""
    write_file(Path(path), lambda f: pickle.dump(obj, f, protocol=2))
