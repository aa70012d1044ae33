"""The one writer: every file the harness writes goes through ``write_file``.

It refuses a target that exists and is not a regular file (a device, a FIFO, a socket, a directory; a symlink
unless ``force``, which then replaces the link itself, never the file it points to), writes a temporary file
beside the target and renames it into place (a reader sees the old file or the new one, never a part), removes
the temporary file on any failure, and turns the errors a user can fix (a full disk, a read-only file system, no
permission, a path through a file, a symlink loop) into one ``WriteError`` line naming the path.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from harness.util.errors import HarnessError

Payload = Union[str, bytes, Callable[[BinaryIO], object]]

# errno → what it means for the user; any other OSError passes through (the CLI prints it as one line)
USER_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOTDIR: "a part of the path is not a directory", errno.ELOOP: "too many symbolic links",
               errno.EEXIST: "a part of the path exists and is not a directory", errno.EDQUOT: "disk quota exceeded"}


class WriteError(HarnessError, OSError):
    """A file or directory could not be written: a target that is not a regular file, a full disk, a read-only
    file system, no permission, a path through a file; the message is one line naming the path. An ``OSError``
    too (``errno``, ``strerror`` and ``filename`` set), so callers that explain a failed write still catch it."""

    def __init__(self, message: str, err: int | None = None, path: Path | str | None = None):
        OSError.__init__(self, err, USER_ERRNOS.get(err, message) if err else message, None if path is None
                         else os.fspath(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def check_target(path: Path | str, *, force: bool = False) -> None:
    """Raise ``WriteError`` when ``path`` exists and is not a regular file (a symlink passes with ``force``)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise as_write_error(e, path) from None
    if stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode) and force):
        return
    hint = " (--force replaces the link itself)" if stat.S_ISLNK(st.st_mode) else ""
    raise WriteError(f"refusing to write {path}: it exists and is {_kind(st.st_mode)}{hint}")


def as_write_error(e: OSError, path: Path | str | None = None) -> OSError | WriteError:
    """``e`` as a one-line ``WriteError`` naming the path when its errno is one the user can fix, else ``e``."""
    if isinstance(e, WriteError) or e.errno not in USER_ERRNOS:
        return e
    where = e.filename if path is None and e.filename else path
    return WriteError(f"cannot write {where}: {USER_ERRNOS[e.errno]} ({errno.errorcode[e.errno]})", e.errno, where)


def os_error_line(e: OSError) -> str:
    """One line for any ``OSError``: the path(s), what went wrong and the errno's name."""
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    name = errno.errorcode.get(e.errno or 0, "")
    what = f"{e.strerror or e}" + (f" ({name})" if name else "")
    return f"{paths}: {what}" if paths else what


def ensure_dir(path: Path | str) -> Path:
    """``path`` as a directory (made with its parents when missing); a failure is one ``WriteError`` line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"cannot make directory {path}: it exists and is not a directory") from None
    except OSError as e:
        raise as_write_error(e, path) from None
    return path


def write_file(path: Path | str, payload: Payload, *, force: bool = False, fsync: bool = False,
               parents: bool = True) -> Path:
    """Write ``payload`` (text, bytes, or a function given the open binary file) to ``path`` atomically: checked
    by ``check_target``, written to a temporary file beside it, renamed into place. ``fsync``: flushed to disk
    before the rename (checkpoints). ``parents``: the directory is made when missing. Returns ``path``."""
    path = Path(path)
    check_target(path, force=force)
    if parents:
        ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(3)}")
    try:
        with open(tmp, "xb") as f:
            if callable(payload):
                payload(f)
            else:
                f.write(payload.encode("utf-8") if isinstance(payload, str) else payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise as_write_error(e, path) from None
    except BaseException:
        _remove(tmp)
        raise
    return path


@contextmanager
def partial_file(path: Path | str, *, resume: bool) -> Iterator[BinaryIO]:
    """A file kept between attempts and renamed by its owner once complete (a resumable download's ``.part``):
    opened to append (``resume``) or from empty, after ``check_target``; user-fixable errors as ``WriteError``."""
    check_target(path)
    try:
        with open(path, "ab" if resume else "wb") as f:
            yield f
    except OSError as e:
        raise as_write_error(e, path) from None


def copy_file(source: Path | str, path: Path | str, *, force: bool = False) -> Path:
    """Copy ``source``'s bytes to ``path`` through ``write_file``."""
    def copy(out: BinaryIO) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)

    return write_file(path, copy, force=force)


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # the write failed for a reason that also stops the removal (a read-only file system)
        pass


def check_writable_dir(path: Path | str) -> Path:
    """Make directory ``path`` when missing and prove a file can be created in it (made and removed at once), so a
    read-only or unwritable destination is one ``WriteError`` line before the work, not after it."""
    path = ensure_dir(path)
    probe = path / f".write-probe-{secrets.token_hex(3)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as e:
        raise as_write_error(e, path) from None
    return path


@contextmanager
def removed_on_failure(path: Path | str, *, remove: bool = True) -> Iterator[Path]:
    """Directory ``path`` is removed (with what it holds) when the block fails, so it exists only complete;
    ``remove=False`` keeps it (it was there before the block)."""
    try:
        yield Path(path)
    except BaseException:
        if remove:
            shutil.rmtree(path, ignore_errors=True)
        raise
