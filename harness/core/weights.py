"""Pretrained weight files: where they are looked for, how they are checked, how they are fetched.

A weight file is announced by a plugin (``harness_weight_files``) with its accepted file names, a check and
where it can be downloaded (``WeightFile.downloads``); ``find_weight`` looks for it in, in order,

1. ``--weights-dir`` (``Plugins.weights_dir``, passed as a value),
2. ``$HARNESS_WEIGHTS``,
3. ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``, where torch.hub caches),
4. ``~/.cache/clip`` (where openai-clip caches),

and verifies it: on the full digest a download of that file name declares, else by ``WeightFile.check``:
``sha256`` (full digest), ``sha256-prefix`` (the sha256 starts with the hex suffix of the file name,
``name-<hex>.ext`` as torch.hub names files, else with ``WeightFile.digest``), ``md5``, or ``none`` (accepted
but shown as "unverified", never silently). A file that passes only a prefix check is shown as "prefix-checked
only"; one that fails its check is refused with both hashes.

``harness fetch NAME`` (``fetch_weight``) downloads a weight file into the first search directory; nothing is
downloaded implicitly unless ``HARNESS_FETCH=auto``, where ``require_weight`` fetches a missing file first.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TYPE_CHECKING

from harness.util.errors import FetchError, MissingWeightsError, UnknownNameError
from harness.util.hashing import file_digest
from harness.contract.types import Download, WeightFile
from harness.core.fetch import FetchSettings, auto_fetch, download, parse_digest

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

CHECKS = ("sha256", "sha256-prefix", "md5", "none")
# torch.hub's naming convention: ``name-<first hex digits of the sha256>.ext``
_HASH_SUFFIX = re.compile(r"-([0-9a-fA-F]{8,64})\.[A-Za-z0-9]+$")

# what a found file can be and still be used ("wrong hash" and "missing" cannot)
USABLE = ("present", "prefix-checked only", "unverified")


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


@dataclass
class WeightCheck:
    """The outcome of checking one candidate file.

    status: "present" (a full digest matched), "prefix-checked only" (a sha256 prefix matched, no full digest is
    declared for the name), "unverified" (check "none"), "wrong hash"
    """

    path: Path
    status: str
    expected: Optional[str]
    actual: Optional[str]


def declared_digest(w: WeightFile, filename: str) -> Optional[str]:
    """The full digest (``"sha256:<hex>"``) a download of ``w`` declares for ``filename``, or None."""
    return next((d.digest for d in w.downloads if d.filename == filename and d.digest), None)


def check_file(w: WeightFile, path: Path) -> WeightCheck:
    """Verify ``path`` on the full digest declared for its name, else against ``w.check``."""
    if w.check not in CHECKS:
        raise ValueError(f"weight file {w.name!r}: unknown check {w.check!r} (valid: {', '.join(CHECKS)})")
    declared = declared_digest(w, path.name)
    if declared:
        algorithm, expected = parse_digest(declared)
        actual = file_digest(path, algorithm)
        return WeightCheck(path, "present" if actual == expected else "wrong hash", expected, actual)
    if w.check == "none":
        return WeightCheck(path, "unverified", None, None)
    algorithm = "md5" if w.check == "md5" else "sha256"
    actual = file_digest(path, algorithm)
    expected = (w.digest or "").lower()
    if w.check != "sha256-prefix":
        return WeightCheck(path, "present" if expected and actual == expected else "wrong hash", expected, actual)
    suffix = _HASH_SUFFIX.search(path.name)
    expected = suffix.group(1).lower() if suffix else expected
    ok = bool(expected) and actual.startswith(expected)
    return WeightCheck(path, "prefix-checked only" if ok else "wrong hash", expected,
                       actual[: max(len(expected), 8)])


def _candidates(w: WeightFile, weights_dir: Optional[Path]) -> list[Path]:
    return [d / name for d in search_dirs(weights_dir) for name in w.filenames if (d / name).is_file()]


def _where_line(w: WeightFile, weights_dir: Optional[Path]) -> str:
    dirs = search_dirs(weights_dir)
    names = " or ".join(w.filenames)
    src = f" (from {w.source})" if w.source else ""
    fetch = f"run `harness fetch {w.name}`, or " if w.downloads else ""
    return (f"{fetch}put {names}{src} into {dirs[0]} (or pass --weights-dir DIR; searched: "
            f"{', '.join(map(str, dirs))})")


def locate(w: WeightFile, weights_dir: Optional[Path] = None) -> tuple[Optional[WeightCheck], list[WeightCheck]]:
    """The first candidate that passes its check (or is unverified), and every wrong-hash candidate seen."""
    wrong = []
    for path in _candidates(w, weights_dir):
        c = check_file(w, path)
        if c.status in USABLE:
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
    if found is None and not wrong and w.downloads and auto_fetch():
        fetch_weight(w, FetchSettings.from_env(), weights_dir)  # HARNESS_FETCH=auto: fetched on first use
        found, wrong = locate(w, weights_dir)
    if found is not None:
        return found.path
    if wrong:
        c = wrong[0]
        declared = declared_digest(w, c.path.name)
        check = parse_digest(declared)[0] if declared else w.check
        raise MissingWeightsError(
            f"weight file {name!r}: {c.path} fails its {check} check (expected {c.expected}, got {c.actual}); "
            f"replace it with the right file: {_where_line(w, weights_dir)}")
    raise MissingWeightsError(f"weight file {name!r} ({w.purpose}) is missing: {_where_line(w, weights_dir)}")


def fetch_weight(w: WeightFile, settings: FetchSettings, weights_dir: Optional[Path] = None) -> str:
    """Download weight file ``w`` into the first search directory (``weights_dir`` when given) unless a copy that
    passes its full check is already found; one line saying what happened. Raises MissingWeightsError (nothing
    to download) or FetchError (the first source's failure, when every source failed)."""
    found, _ = locate(w, weights_dir)
    if found is not None and found.status == "present":
        return f"{w.name}: present at {found.path}"
    if not w.downloads:
        raise MissingWeightsError(f"weight file {w.name!r} declares no download: {_where_line(w, weights_dir)}")
    errors: list[FetchError] = []
    for src in w.downloads:
        if src.filename not in w.filenames:
            raise ValueError(f"weight file {w.name!r}: download {src.filename!r} is not an accepted file name")
        try:
            result = download(src, search_dirs(weights_dir)[0], settings, label=w.name)
        except FetchError as e:
            errors.append(e)
            if settings.offline:
                break
            continue
        check = check_file(w, result.path)
        digest = f"{check.expected}" if check.expected else "no published digest"
        return f"{w.name}: {check.status} at {result.path} ({digest})"
    raise errors[0]


def _declared_line(src: Download) -> str:
    return f"{src.filename} from {src.urls[0]}" + (f", {src.digest}" if src.digest else ", no published digest")


def weight_sha256(path: Path) -> str:
    """Full sha256 of a weight file, for the protocol of a record."""
    return file_digest(Path(path), "sha256")


def weight_status(plugins: Plugins) -> list[dict]:
    """One dict per announced weight file: name, purpose, filenames, locations, check, digest, source, downloads
    (one line each), full_digests (accepted file name: the full digest its download declares, which ``check_file``
    verifies), status (see ``WeightCheck``, or "missing"), path, detail."""
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
                    "digest": w.digest, "source": w.source, "downloads": [_declared_line(d) for d in w.downloads],
                    "full_digests": {f: d for f in w.filenames if (d := declared_digest(w, f))},
                    "status": status, "path": str(path) if path else None, "detail": detail})
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
        else:  # sha256-prefix from each accepted name's 8-hex suffix, unless a download declares the full digest
            full = r["full_digests"]
            others = [f for f in r["filenames"] if f not in full]
            check = "; ".join([f"{digest.replace(':', ' ')} for {f}" for f, digest in full.items()]
                              + ([f"{r['check']} from the file name's hex suffix"
                                  + (f" for {', '.join(others)}" if full else "")] if others else []))
        state = r["status"] + (f" at {r['path']}" if r["path"] else "") + (f" ({r['detail']})" if r["detail"] else "")
        lines.append(f"{r['name']}: {state}")
        lines.append(f"    purpose: {r['purpose']}")
        lines.append(f"    accepted file names: {', '.join(r['filenames'])}")
        lines.append(f"    check: {check}")
        if r["source"]:
            lines.append(f"    source: {r['source']}")
        for line in r["downloads"]:
            lines.append(f"    fetch: {line} (`harness fetch {r['name']}`)")
    if not rows:
        lines.append("(no weight files announced)")
    return "\n".join(lines)
