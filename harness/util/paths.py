"""Paths read from files the user did not type (manifest rows, ``pretrained.json``, a run's own files) are
resolved through ``resolve_inside``: each must stay inside the directory it belongs to."""
from __future__ import annotations

from pathlib import Path

from harness.util.errors import HarnessError


class PathOutsideError(HarnessError):
    """A path read from a file leads outside the directory it belongs to (``..``, absolute, a symlink out)."""


def resolve_inside(base: Path | str, name: Path | str, what: str) -> Path:
    """``base / name`` once it is known to stay inside ``base`` with every symlink followed; ``name`` must be a
    relative path. Raises ``PathOutsideError`` (one line naming ``what``, the path and ``base``) for an absolute
    path, a ``..`` that climbs out, or a symlink (of ``name`` or of a directory on its way) that leads out. The
    returned path keeps ``name``'s own spelling (a link inside ``base`` to a file inside it stays as named)."""
    base, rel = Path(base), Path(name)
    if str(name) == "" or rel.is_absolute() or rel.drive:
        raise PathOutsideError(f"{what} {str(name)!r} is {'empty' if str(name) == '' else 'an absolute path'}; "
                               f"it must be a path relative to {base}")
    root = base.resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise PathOutsideError(f"{what} {str(name)!r} leads outside {base} (to {full}); refused")
    return base / rel
