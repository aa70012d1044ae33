"""Unpacking a fetched archive (tar, tar.gz, zip) into a data directory, safely.

Every member is checked as it is read: only regular files and directories are accepted, with a relative path
without ``..``; a link, a device, an absolute path or a path that would land outside the target refuses the whole
archive. Members are written into a staging folder inside the target (``.unpack-<archive>``) and moved into
place only when the whole archive has been read (zip members are CRC-checked as they are read, a truncated
gzip stream fails), so a refused or damaged archive leaves nothing behind. ``strip`` takes a leading folder
off each member's path ("birds/"), ``into`` puts the members under a folder of the target ("images");
``__MACOSX/`` resource forks are skipped.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator, Optional

from harness.util.atomic import write_file
from harness.util.errors import FetchError

_SKIPPED = ("__MACOSX",)
# (member name, kind, opener): kind is "file", "dir" or what else the member is ("symlink", "hard link", ...)
_Member = tuple[str, str, Optional[Callable[[], IO[bytes]]]]


def unpack(archive: Path, dest: Path, *, strip: str = "", into: str = "") -> int:
    """Unpack ``archive`` into ``dest`` (see the module docstring); the number of files written. Raises
    FetchError (one line naming the archive and the member) for an unsafe member or a damaged archive."""
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".unpack-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        written = 0
        for name, kind, opener in _members(archive):
            rel = member_target(archive.name, name, kind, strip=strip, into=into)
            if rel is None:
                continue
            path = staging.joinpath(*rel.parts)
            if kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src:  # type: ignore[misc]  # files always have an opener
                write_file(path, lambda out: shutil.copyfileobj(src, out, 1 << 20), parents=False)
            written += 1
        _merge(staging, dest)
        return written
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise FetchError(f"{archive}: damaged archive ({e}); nothing was unpacked") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def member_target(archive: str, name: str, kind: str, *, strip: str = "", into: str = "") -> Optional[PurePosixPath]:
    """Where member ``name`` goes, relative to the target (None: skipped); FetchError when it is not a regular
    file or directory, or its path is absolute or climbs out with ``..``."""
    def refuse(why: str) -> FetchError:
        return FetchError(f"{archive}: refused member {name!r}: {why}; nothing was unpacked")

    if kind not in ("file", "dir"):
        raise refuse(f"a {kind} (only regular files and directories are unpacked)")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix):
        raise refuse("an absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("a path that climbs out with '..'")
    if not parts or parts[0] in _SKIPPED:
        return None
    strip_parts = [p for p in strip.split("/") if p]
    if strip_parts and parts[:len(strip_parts)] == strip_parts:
        parts = parts[len(strip_parts):]
        if not parts:
            return None
    return PurePosixPath(*[p for p in into.split("/") if p], *parts)


def _members(archive: Path) -> Iterator[_Member]:
    if zipfile.is_zipfile(archive):
        yield from _zip_members(archive)
    elif tarfile.is_tarfile(archive):
        yield from _tar_members(archive)
    else:
        raise FetchError(f"{archive}: neither a tar nor a zip archive; nothing was unpacked")


def _zip_members(archive: Path) -> Iterator[_Member]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            ftype = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file or folder)
            if ftype == stat.S_IFLNK:
                kind = "symlink"
            elif ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
                kind = "special file"
            else:
                kind = "dir" if info.is_dir() else "file"
            yield info.filename, kind, (lambda info=info: zf.open(info))


def _tar_members(archive: Path) -> Iterator[_Member]:
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            if m.isdir():
                kind = "dir"
            elif m.isreg():
                kind = "file"
            else:
                kind = "symlink" if m.issym() else "hard link" if m.islnk() else "special file"
            yield m.name, kind, (lambda m=m: tf.extractfile(m))


def _merge(staging: Path, dest: Path) -> None:
    """Move every entry of ``staging`` into ``dest``: folders merged, files replaced."""
    for entry in staging.iterdir():
        target = dest / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
