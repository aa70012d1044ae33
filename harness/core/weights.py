"""Pretrained weight files: where they are looked for, how they are checked.

The harness never downloads anything. A weight file is announced by a plugin (``harness_weight_files``) with
its accepted file names and a check; ``find_weight`` looks for it in, in order,

1. ``--weights-dir`` (``Plugins.weights_dir``, passed as a value),
2. ``$HARNESS_WEIGHTS``,
3. ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``, where torch.hub caches),
4. ``~/.cache/clip`` (where openai-clip caches),

and verifies it: ``sha256`` (full digest), ``sha256-prefix`` (the sha256 starts with the hex suffix of the file
name, ``name-<hex>.ext`` as torch.hub names files, else with ``WeightFile.digest``), ``md5``, or ``none`` (accepted
but shown as "unverified", never silently). A file that fails its check is refused with both hashes.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TYPE_CHECKING

from harness.util.errors import MissingWeightsError, UnknownNameError
from harness.contract.types import WeightFile

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

CHECKS = ("sha256", "sha256-prefix", "md5", "none")
# torch.hub's naming convention: ``name-<first hex digits of the sha256>.ext``
_HASH_SUFFIX = re.compile(r"-([0-9a-fA-F]{8,64})\.[A-Za-z0-9]+$")

# Hashing a large file takes seconds; remember digests per (path, size, mtime).
_DIGESTS: dict[tuple[str, str, int, int], str] = {}


def search_dirs(weights_dir: Optional[Path | str] = None) -> list[Path]:
    """The directories searched for weight files, in order: ``weights_dir`` (``--weights-dir``) when given, then
    the environment's (read at call time)."""
    dirs: list[Path] = [Path(weights_dir).expanduser()] if weights_dir else []
    if os.environ.get("HARNESS_WEIGHTS"):
        dirs.append(Path(os.environ["HARNESS_WEIGHTS"]).expanduser())
    torch_home = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch").expanduser()
    dirs.append(torch_home / "hub" / "checkpoints")
    dirs.append(Path.home() / ".cache" / "clip")
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (cached per path, size and modification time)."""
    st = path.stat()
    key = (str(path.resolve()), algorithm, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


@dataclass
class WeightCheck:
    """The outcome of checking one candidate file.

    status: "present" (check passed), "unverified" (check "none"), "wrong hash"
    """

    path: Path
    status: str
    expected: Optional[str]
    actual: Optional[str]


def check_file(w: WeightFile, path: Path) -> WeightCheck:
    """Verify ``path`` against ``w.check``."""
    if w.check not in CHECKS:
        raise ValueError(f"weight file {w.name!r}: unknown check {w.check!r} (valid: {', '.join(CHECKS)})")
    if w.check == "none":
        return WeightCheck(path, "unverified", None, None)
    algorithm = "md5" if w.check == "md5" else "sha256"
    actual = file_digest(path, algorithm)
    expected = (w.digest or "").lower()
    if w.check == "sha256-prefix":
        suffix = _HASH_SUFFIX.search(path.name)
        expected = suffix.group(1).lower() if suffix else expected
    ok = actual.startswith(expected) if w.check == "sha256-prefix" else actual == expected
    if w.check == "sha256-prefix":
        actual_shown = actual[: max(len(expected), 8)]
    else:
        actual_shown = actual
    return WeightCheck(path, "present" if ok and expected else "wrong hash", expected, actual_shown)


def _candidates(w: WeightFile, weights_dir: Optional[Path]) -> list[Path]:
    return [d / name for d in search_dirs(weights_dir) for name in w.filenames if (d / name).is_file()]


def _where_line(w: WeightFile, weights_dir: Optional[Path]) -> str:
    dirs = search_dirs(weights_dir)
    names = " or ".join(w.filenames)
    src = f" (from {w.source})" if w.source else ""
    return f"put {names}{src} into {dirs[0]} (or pass --weights-dir DIR; searched: {', '.join(map(str, dirs))})"


def locate(w: WeightFile, weights_dir: Optional[Path] = None) -> tuple[Optional[WeightCheck], list[WeightCheck]]:
    """The first candidate that passes its check (or is unverified), and every wrong-hash candidate seen."""
    wrong = []
    for path in _candidates(w, weights_dir):
        c = check_file(w, path)
        if c.status in ("present", "unverified"):
            return c, wrong
        wrong.append(c)
    return None, wrong


def find_weight(plugins: Plugins, name: str) -> Path:
    """The path of weight file ``name`` (announced by a plugin), verified; raises UnknownNameError (the announced
    names listed) or MissingWeightsError with one line saying what to do."""
    files = plugins.weight_files()
    if name not in files:
        raise UnknownNameError("weight file", name, list(files))
    return require_weight(files[name], plugins.weights_dir)


def require_weight(w: WeightFile, weights_dir: Optional[Path] = None) -> Path:
    """The path of the weight file ``w`` describes, verified, for code that holds its own ``WeightFile`` (no
    plugin manager needed; ``weights_dir`` is searched first); raises MissingWeightsError with one line: the file
    that fails its check and what to put where, or where the missing file goes."""
    name = w.name
    found, wrong = locate(w, weights_dir)
    if found is not None:
        return found.path
    if wrong:
        c = wrong[0]
        raise MissingWeightsError(
            f"weight file {name!r}: {c.path} fails its {w.check} check (expected {c.expected}, got {c.actual}); "
            f"replace it with the right file: {_where_line(w, weights_dir)}")
    raise MissingWeightsError(f"weight file {name!r} ({w.purpose}) is missing: {_where_line(w, weights_dir)}")


def weight_sha256(path: Path) -> str:
    """Full sha256 of a weight file, for the protocol of a record."""
    return file_digest(Path(path), "sha256")


def weight_status(plugins: Plugins) -> list[dict]:
    """One dict per announced weight file: name, purpose, filenames, locations, check, digest, status, path."""
    out = []
    for name, w in sorted(plugins.weight_files().items()):
        found, wrong = locate(w, plugins.weights_dir)
        if found is not None:
            status, path, detail = found.status, found.path, None
        elif wrong:
            status, path = "wrong hash", wrong[0].path
            detail = f"expected {wrong[0].expected}, got {wrong[0].actual}"
        else:
            status, path, detail = "missing", None, None
        out.append({"name": name, "purpose": w.purpose, "filenames": list(w.filenames),
                    "locations": [str(d) for d in search_dirs(plugins.weights_dir)], "check": w.check,
                    "digest": w.digest,
                    "source": w.source, "status": status, "path": str(path) if path else None, "detail": detail})
    return out


def describe_weights(plugins: Plugins) -> str:
    """The text of ``harness weights``."""
    rows = weight_status(plugins)
    lines = ["search order: " + ", ".join(str(d) for d in search_dirs(plugins.weights_dir)), ""]
    for r in rows:
        if r["check"] == "none":
            check = "unverified (check: none)"
        elif r["digest"]:
            check = f"{r['check']} {r['digest']}"
        else:  # sha256-prefix from each accepted name's 8-hex suffix
            check = f"{r['check']} from the file name's hex suffix"
        state = r["status"] + (f" at {r['path']}" if r["path"] else "") + (f" ({r['detail']})" if r["detail"] else "")
        lines.append(f"{r['name']}: {state}")
        lines.append(f"    purpose: {r['purpose']}")
        lines.append(f"    accepted file names: {', '.join(r['filenames'])}")
        lines.append(f"    check: {check}")
        if r["source"]:
            lines.append(f"    source: {r['source']}")
    if not rows:
        lines.append("(no weight files announced)")
    return "\n".join(lines)
