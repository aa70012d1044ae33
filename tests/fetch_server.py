"""A loopback HTTP server for the download tests: serves in-memory files on 127.0.0.1 only, with Range support,
and per-path faults (a connection cut half way, an HTTP status, a stall, a Google-Drive-style form page).
Every handler stops by itself: a stall waits at most ``STALL_S`` seconds."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import urlsplit

STALL_S = 5.0


@dataclass
class Route:
    body: bytes = b""
    status: int = 200  # anything but 200: answered with that status and no file
    cut_after: Optional[int] = None  # the first answer closes the connection after this many body bytes
    stall: bool = False  # headers, then no body until the server stops (or STALL_S)
    html: Optional[str] = None  # answered as a text/html page
    ranges: bool = True  # honour Range requests
    sent: int = 0  # body bytes sent so far, over all requests
    requests: list[dict] = field(default_factory=list)  # the headers of each request


class LoopbackServer:
    """``with LoopbackServer() as s: s.routes["/a"] = Route(b"..."); s.url("/a")``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return None

            def do_GET(self) -> None:
                server._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=STALL_S)

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        route = self.routes.get(parts.path + (f"?{parts.query}" if parts.query else "")) or self.routes.get(parts.path)
        if route is None:
            h.send_error(404)
            return
        route.requests.append(dict(h.headers))
        if route.status != 200:
            h.send_error(route.status)
            return
        if route.html is not None:
            page = route.html.encode()
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Length", str(len(page)))
            h.end_headers()
            h.wfile.write(page)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if m and route.ranges:
            start = int(m.group(1))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
        else:
            h.send_response(200)
        body = route.body[start:]
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if route.stall:
            h.wfile.flush()
            self.stop.wait(STALL_S)
            h.close_connection = True
            return
        if route.cut_after is not None:
            body, route.cut_after = body[:route.cut_after], None
            h.close_connection = True
        route.sent += len(body)  # counted before the write: the client may have read it all before this thread
        h.wfile.write(body)      # runs on (a count after the write raced the test's assertion)
