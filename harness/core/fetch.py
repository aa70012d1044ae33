"""Downloading one declared file (``harness.contract.types.Download``): resumable, verified, offline-safe.

``download`` writes to ``<name>.part`` beside the target, resumes it with an HTTP Range request after a cut
connection (and across runs interrupted by Ctrl-C), shows a tqdm progress bar, retries transient failures
(timeouts, cut connections, 5xx, 429) with exponential back-off (a refused connection or an unknown host is not
retried: nothing serves there), and renames the file into place only after its size and full digest match. A
file already at the target (an earlier fetch, or put there by hand, e.g. offline) is verified the same way and
used without a download; one that does not match is fetched again (offline: one line naming the mismatch). Any
failure removes the partial file and raises ``FetchError`` with one line naming the file, the address and the
reason (a digest mismatch names the expected and the received digest).

Settings come from the environment (the CLI's ``--offline``/``--mirror`` override it):

* ``HARNESS_OFFLINE=1``: every download fails at once, before a socket is opened;
* ``HARNESS_MIRROR=URL``: every file comes from ``URL/<host>/<path>`` of its original address (a mirror or
  proxy cache that keeps the original paths; a Google Drive file: ``URL/<host>/<path>/<file id>``);
* ``HARNESS_FETCH=auto``: a missing weight file is fetched on first use (``auto_fetch``); by default nothing is
  downloaded implicitly.

The transfer uses the standard library's urllib: it has everything needed (Range headers, socket timeouts,
streamed reads, redirects), and a Google Drive "can't scan this file for viruses" page is a plain HTML form
whose fields are the address of the file (``drive_form_target``).
"""
from __future__ import annotations

import http.client
import os
import re
import sys
import socket
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Optional
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from harness.contract.types import Download
from harness.util.atomic import check_target, ensure_dir, partial_file
from harness.util.errors import FetchError
from harness.util.hashing import file_digest
from harness.util.version import __version__

OFFLINE_ENV = "HARNESS_OFFLINE"
MIRROR_ENV = "HARNESS_MIRROR"
AUTO_ENV = "HARNESS_FETCH"
DIGEST_LENGTHS = {"sha256": 64, "md5": 32}
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class FetchSettings:
    """How downloads behave.

    offline:  refuse every download before any network access
    mirror:   base address of a mirror keeping the original paths (None: the declared addresses)
    timeout:  seconds a connection or a read may wait for data before the attempt fails
    retries:  further attempts per address after a transient failure
    backoff:  seconds before the first retry, doubled for each further one
    chunk:    bytes read at a time (at most this much is fetched twice after a cut connection)
    progress: draw a progress bar
    """

    offline: bool = False
    mirror: Optional[str] = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    chunk: int = 1 << 20
    progress: bool = True

    @classmethod
    def from_env(cls, *, offline: Optional[bool] = None, mirror: Optional[str] = None) -> "FetchSettings":
        """Settings from ``HARNESS_OFFLINE`` and ``HARNESS_MIRROR``; a given ``offline``/``mirror`` wins."""
        if offline is None:
            offline = os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE
        mirror = mirror or os.environ.get(MIRROR_ENV) or None
        try:
            scheme = urlsplit(mirror).scheme if mirror else ""
        except ValueError as e:  # e.g. an unclosed IPv6 bracket
            raise FetchError(f"mirror {mirror!r} is not a valid address ({e}) (--mirror / {MIRROR_ENV})") from None
        if mirror and scheme not in ("http", "https"):
            raise FetchError(f"mirror {mirror!r} is not an http(s) address (--mirror / {MIRROR_ENV})")
        return cls(offline=offline, mirror=mirror)


@dataclass(frozen=True)
class FetchResult:
    """A file in place: its path, "verified" (digest matched) or "unverified" (none declared), the address."""

    path: Path
    status: str
    url: str


def auto_fetch() -> bool:
    """Whether a missing weight file is fetched on first use (``HARNESS_FETCH=auto``)."""
    return os.environ.get(AUTO_ENV, "").strip().lower() == "auto"


def parse_digest(digest: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` / ``"md5:<hex>"`` → (algorithm, lower-case hex); ValueError for anything else."""
    algorithm, _, value = digest.partition(":")
    value = value.strip().lower()
    if algorithm not in DIGEST_LENGTHS or not re.fullmatch(f"[0-9a-f]{{{DIGEST_LENGTHS[algorithm]}}}", value):
        raise ValueError(f"digest {digest!r}: expected sha256:<64 hex digits> or md5:<32 hex digits>")
    return algorithm, value


def mirror_url(url: str, mirror: str) -> str:
    """The address of ``url`` on a mirror that keeps the original paths: ``MIRROR/<host>/<path>`` (plus
    ``/<id>`` for an address whose file is named by an ``id`` query parameter, as Google Drive's are)."""
    parts = urlsplit(url)
    tail = parts.netloc + parts.path
    file_id = parse_qs(parts.query).get("id")
    if file_id:
        tail = f"{tail.rstrip('/')}/{file_id[0]}"
    return f"{mirror.rstrip('/')}/{tail}"


class _Transient(Exception):
    """Worth another attempt at the same address."""


class _Restart(_Transient):
    """The partial file cannot be resumed: the next attempt starts over."""


class _Permanent(Exception):
    """The address will not give the file (404, an HTML page, ...): go to the next one."""


def download(src: Download, dest_dir: Path, settings: FetchSettings, *, label: str = "") -> FetchResult:
    """Fetch ``src`` into ``dest_dir/src.filename``, verified (see the module docstring); raises FetchError."""
    name = label or src.filename
    target = dest_dir / src.filename
    check_target(target)  # the .part file is resumed in place and renamed: both must be regular files or absent
    if target.is_file():  # put there by hand (offline) or by an earlier fetch: used once it verifies
        try:
            return FetchResult(target, _verify(target, src, f"the file in place ({target})", name,
                                               removed=False), str(target))
        except FetchError as e:
            if settings.offline:
                raise
            tqdm.write(f"{e}; fetching it again", file=sys.stderr)
    if settings.offline:
        raise FetchError(f"{name}: not downloaded: offline ({OFFLINE_ENV}=1 or --offline); put {src.filename} "
                         f"into {dest_dir} by hand (from {src.urls[0]})")
    urls = [mirror_url(u, settings.mirror) for u in src.urls] if settings.mirror else list(src.urls)
    made = [d for d in (dest_dir, *dest_dir.parents) if not d.exists()]  # deepest first
    ensure_dir(dest_dir)
    part = dest_dir / f"{src.filename}.part"
    check_target(part)
    try:
        url = _transfer_any(urls, part, src, settings, name)
        status = _verify(part, src, url, name)
    except KeyboardInterrupt:
        raise  # the partial file stays: the next run resumes it
    except BaseException:
        part.unlink(missing_ok=True)
        for d in made:  # a failed download leaves no folder it made either
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise
    os.replace(part, target)
    return FetchResult(target, status, url)


def _verify(path: Path, src: Download, origin: str, name: str, *, removed: bool = True) -> str:
    """"verified" or "unverified" (no digest declared); FetchError naming ``origin`` (an address, or the file in
    place) and the expected and received size or digest. ``removed``: the message says the file was removed."""
    then = "; the download was removed" if removed else ""
    size = path.stat().st_size
    if src.size is not None and size != src.size:
        raise FetchError(f"{name}: {origin} gave {size} bytes, expected {src.size}{then}")
    if src.digest is None:
        return "unverified"
    algorithm, expected = parse_digest(src.digest)
    received = file_digest(path, algorithm)
    if received != expected:
        raise FetchError(f"{name}: {algorithm} mismatch for {src.filename} from {origin}: expected {expected}, "
                         f"received {received}{then}")
    return "verified"


def _transfer_any(urls: list[str], part: Path, src: Download, settings: FetchSettings, name: str) -> str:
    """Fetch into ``part`` from the first address that works; the address used."""
    reason = ""
    for url in urls:
        for attempt in range(settings.retries + 1):
            try:
                _transfer(url, part, src.size, settings, name)
                return url
            except _Permanent as e:
                reason = f"{url}: {e}"
                break
            except _Transient as e:
                reason = f"{url}: {e}"
                if attempt < settings.retries:
                    delay = settings.backoff * 2 ** attempt
                    tqdm.write(f"{name}: {e}; retrying in {delay:g} s", file=sys.stderr)
                    time.sleep(delay)
    tried = f" (tried {len(urls)} addresses)" if len(urls) > 1 else ""
    raise FetchError(f"{name}: download failed: {reason}{tried}")


def _open(url: str, have: int, settings: FetchSettings) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"t2i-harness/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=settings.timeout)
    except HTTPError as e:
        e.close()
        if e.code == 416 and have:  # the partial file is not a prefix the server knows: start over
            raise _Restart("the server refused to resume (HTTP 416)") from None
        if e.code >= 500 or e.code in (408, 429):
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise _Permanent(f"HTTP {e.code} {e.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as e:
        inner = getattr(e, "reason", None) or e
        if isinstance(inner, (ConnectionRefusedError, socket.gaierror)):  # no server, or no such host: not retried
            raise _Permanent(_reason(e)) from None
        raise _Transient(_reason(e)) from None


def _reason(e: BaseException) -> str:
    inner = getattr(e, "reason", None) or e
    if isinstance(inner, TimeoutError):
        return "no answer within the timeout"
    return str(inner) or type(inner).__name__


def _transfer(url: str, part: Path, size: Optional[int], settings: FetchSettings, name: str) -> None:
    """One attempt: append to ``part`` from where it ends (Range), or start over when the server ignores it."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:
        if have == size:
            return
        part.unlink()
        have = 0
    try:
        resp = _open(url, have, settings)
    except _Restart:
        part.unlink(missing_ok=True)
        raise
    try:
        if resp.headers.get_content_type() == "text/html":
            target = drive_form_target(resp.read(1 << 20).decode("utf-8", "replace"), resp.geturl())
            if target is None:
                raise _Permanent("received an HTML page instead of the file")
            resp.close()
            resp = _open(target, have, settings)
            if resp.headers.get_content_type() == "text/html":
                raise _Permanent("received an HTML page instead of the file, after its download form")
        _receive(resp, part, have, size, settings, name)
    finally:
        resp.close()


def _receive(resp: http.client.HTTPResponse, part: Path, have: int, size: Optional[int],
             settings: FetchSettings, name: str) -> None:
    if resp.status == 206:
        start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if not start or int(start.group(1)) != have:
            part.unlink(missing_ok=True)
            raise _Transient(f"the server resumed at the wrong place ({resp.headers.get('Content-Range')})")
    else:
        have = 0  # a full answer: start over
    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    total = have + expected if expected is not None else size
    got = 0
    with partial_file(part, resume=bool(have)) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                       unit_divisor=1024, desc=name, file=sys.stderr,
                                                       disable=not settings.progress, leave=False) as bar:
        while True:
            try:
                block = resp.read(settings.chunk)
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection lost after {have + got} bytes ({_reason(e)})") from None
            if not block:
                break
            f.write(block)
            got += len(block)
            bar.update(len(block))
    if expected is not None and got < expected:
        raise _Transient(f"connection closed after {have + got} of {have + expected} bytes")


class _FormParser(HTMLParser):
    """The first form's action and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: Optional[str] = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in_form = a.get("action") or "", True
        elif tag == "input" and self._in_form and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"] or ""] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def drive_form_target(html: str, base_url: str) -> Optional[str]:
    """The file's address behind a Google Drive confirmation page (a form whose hidden fields include
    ``confirm``), or None when the page has no such form."""
    parser = _FormParser()
    parser.feed(html)
    if not parser.action or "confirm" not in parser.fields:
        return None
    return f"{urljoin(base_url, parser.action)}?{urlencode(parser.fields)}"
