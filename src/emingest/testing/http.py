"""A loopback HTTP/1.1 server for the archive replicas: routes, static files with Range, faults.

Written on the standard library's ``ThreadingHTTPServer`` on purpose: the replicas must control
the wire byte by byte (stall mid-body, reset the socket, send fewer bytes than Content-Length),
which frameworks hide. Every static route answers HEAD, sends Content-Length and
``Accept-Ranges: bytes``, honours a single ``Range: bytes=a-b`` with 206 + Content-Range, and
answers 416 for a range it cannot satisfy.
"""

from __future__ import annotations

import contextlib
import email.utils
import html
import json
import os
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 1 << 16
HOLD_MAX_S = 120.0


@dataclass
class Faults:
    """Fault switches, changeable while the server runs. Counters make "one in N" deterministic.

    ``every`` values count requests to fault-eligible routes (data and API), from 1; 0 is off.
    """

    latency_s: float = 0.0
    """Added before every answer."""
    stall_every: int = 0
    """One request in N sends its headers and part of the body, then stalls ``stall_s``."""
    stall_s: float = 30.0
    status_every: int = 0
    """One request in N answers ``status_code`` (429 or 503) with ``Retry-After``."""
    status_code: int = 503
    retry_after_s: float = 1.0
    reset_every: int = 0
    """One request in N sends part of the body, then resets the connection (RST)."""
    truncate_every: int = 0
    """One request in N sends part of the body, then closes cleanly (short body)."""
    reset_first: int = 0
    """The first N requests send part of the body, then reset (then ``reset_every`` applies)."""
    truncate_first: int = 0
    """The first N requests send part of the body, then close cleanly (a short body)."""
    fail_first: int = 0
    """The first N requests answer ``status_code`` (then the counters above apply)."""
    range_support: bool = True
    """False: ignore Range and Accept-Ranges, as servers that only stream do."""
    omit_from_listing: set[str] = field(default_factory=set)
    """File names left out of directory listings (HTML autoindex and FTP)."""
    hold_after: int = 0
    """Requests after the Nth are held (not answered) until this is set back to 0 or
    :data:`HOLD_MAX_S` passes: the client is stuck at a known point, for kill tests."""
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # Not fields: what the server saw, never a switch (RemoteFaults pushes only fields).
        self.fired: list[str] = []
        """Each fault as it fires ("stall", "reset", "truncate" or the status code): tests
        check that the fault they inject really happened."""
        self.stalling = threading.Event()
        """Set when a stall begins (the bytes before the cut are sent): tests act on it."""

    def next_request(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def reset_counters(self) -> None:
        with self._lock:
            self._count = 0

    def clear(self) -> None:
        """Switch every fault off."""
        self.latency_s = 0.0
        self.stall_every = self.status_every = self.reset_every = self.truncate_every = 0
        self.fail_first = self.reset_first = self.truncate_first = 0
        self.hold_after = 0
        self.status_code = 503
        self.retry_after_s = 1.0
        self.stall_s = 30.0
        self.range_support = True
        self.omit_from_listing = set()
        self.fired.clear()
        self.stalling.clear()
        self.reset_counters()

    def fire(self, kind: str) -> None:
        """Note a fault that happens now (a stall also sets :attr:`stalling`)."""
        self.fired.append(kind)
        if kind == "stall":
            self.stalling.set()

    def hold(self, n: int) -> None:
        """Block request ``n`` while it is past :attr:`hold_after` (retries are held too)."""
        if not self.hold_after or n <= self.hold_after:
            return
        self.fire("hold")
        deadline = time.monotonic() + HOLD_MAX_S
        while self.hold_after and n > self.hold_after and time.monotonic() < deadline:
            time.sleep(0.01)

    @staticmethod
    def _hit(every: int, n: int) -> bool:
        return every > 0 and n % every == 0


Handler = Callable[["RequestContext"], None]


@dataclass
class RequestContext:
    """What a route handler gets: the request, its regex match, and ways to answer."""

    handler: _RequestHandler
    match: re.Match[str]
    query: dict[str, list[str]]
    fault_n: int

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.handler.path).path

    @property
    def method(self) -> str:
        return self.handler.command

    @property
    def base_url(self) -> str:
        host = self.handler.headers.get("Host") or "127.0.0.1"
        return f"http://{host}"

    def header(self, name: str) -> str | None:
        return self.handler.headers.get(name)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def send_json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_bytes(body, "application/json", status=status)

    def send_text(self, text: str, status: int = 200, content_type: str = "text/plain") -> None:
        self.send_bytes(text.encode(), f"{content_type}; charset=utf-8", status=status)

    def send_bytes(
        self,
        body: bytes,
        content_type: str = "application/octet-stream",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        ranged: bool = False,
        last_modified: float | None = None,
    ) -> None:
        """Answer with ``body``; ``ranged`` makes it a static resource (Range, HEAD, 416)."""
        self.handler.send_payload(
            body,
            content_type,
            status=status,
            headers=headers or {},
            ranged=ranged,
            fault_n=self.fault_n,
            last_modified=last_modified,
        )

    def send_file(self, path: Path, content_type: str | None = None) -> None:
        self.handler.send_file(path, content_type, fault_n=self.fault_n)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReplicaHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the replicas are quiet; tests read the request log instead

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        replica = self.server.replica
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        replica.request_log.append((self.command, self.path, self.headers.get("Range")))
        method = "GET" if self.command == "HEAD" else self.command
        for route_method, pattern, func, faulty in replica.routes:
            if route_method != method:
                continue
            m = pattern.fullmatch(path)
            if m is None:
                continue
            faults = replica.faults
            n = faults.next_request() if faulty else 0
            if faulty:
                faults.hold(n)
            if faults.latency_s:
                time.sleep(faults.latency_s)
            if faulty and (n <= faults.fail_first or Faults._hit(faults.status_every, n)):
                self._send_status_fault(faults)
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                func(RequestContext(self, m, query, n))
            return
        self.send_error_text(404, f"no such path: {path}")

    # -- answers -------------------------------------------------------------------------------

    def send_error_text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_status_fault(self, faults: Faults) -> None:
        faults.fire(str(faults.status_code))
        body = f"{HTTPStatus(faults.status_code).phrase} (injected)".encode()
        self.send_response(faults.status_code)
        self.send_header("Retry-After", f"{faults.retry_after_s:g}")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _parse_range(self, size: int) -> tuple[int, int] | str | None:
        """(start, end inclusive), None for no/ignored Range, or "bad" for a 416."""
        header = self.headers.get("Range")
        if not header or not self.server.replica.faults.range_support:
            return None
        m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
        if m is None or (not m.group(1) and not m.group(2)):
            return None  # multi-range or malformed: RFC 9110 lets a server ignore it
        if m.group(1):
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start = max(0, size - int(m.group(2)))
            end = size - 1
        if start >= size or end < start:
            return "bad"
        return start, min(end, size - 1)

    def send_payload(
        self,
        body: bytes,
        content_type: str,
        *,
        status: int,
        headers: dict[str, str],
        ranged: bool,
        fault_n: int,
        last_modified: float | None = None,
    ) -> None:
        size = len(body)
        rng = self._parse_range(size) if ranged and status == 200 else None
        self._send_body(
            lambda a, b: body[a:b],
            size,
            rng,
            content_type,
            status,
            headers,
            ranged,
            fault_n,
            last_modified,
        )

    def send_file(self, path: Path, content_type: str | None, *, fault_n: int) -> None:
        size = path.stat().st_size
        rng = self._parse_range(size)
        with open(path, "rb") as fh:

            def read(a: int, b: int) -> bytes:
                fh.seek(a)
                return fh.read(b - a)

            self._send_body(
                read,
                size,
                rng,
                content_type or guess_type(path.name),
                200,
                {},
                True,
                fault_n,
                path.stat().st_mtime,
            )

    def _send_body(
        self,
        read: Callable[[int, int], bytes],
        size: int,
        rng: tuple[int, int] | str | None,
        content_type: str,
        status: int,
        headers: dict[str, str],
        ranged: bool,
        fault_n: int,
        last_modified: float | None,
    ) -> None:
        if rng == "bad":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = (0, size - 1) if not isinstance(rng, tuple) else rng
        length = max(0, end - start + 1)
        self.send_response(206 if isinstance(rng, tuple) else status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if ranged and self.server.replica.faults.range_support:
            self.send_header("Accept-Ranges", "bytes")
        if isinstance(rng, tuple):
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if last_modified is not None:
            self.send_header("Last-Modified", email.utils.formatdate(last_modified, usegmt=True))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        faults = self.server.replica.faults
        # A faulty answer breaks off halfway through its body (at least one byte in).
        cut = start + max(1, length // 2)
        stall = Faults._hit(faults.stall_every, fault_n)
        eligible = fault_n > 0  # numbered from 1; 0: a route that is never faulted
        reset = Faults._hit(faults.reset_every, fault_n) or (
            eligible and fault_n <= faults.reset_first
        )
        truncate = Faults._hit(faults.truncate_every, fault_n) or (
            eligible and fault_n <= faults.truncate_first
        )
        pos = start
        stop = end + 1
        while pos < stop:
            upto = min(stop, pos + CHUNK)
            if (stall or reset or truncate) and pos < cut <= upto:
                upto = cut
            self.wfile.write(read(pos, upto))
            pos = upto
            if pos == cut and (stall or reset or truncate):
                self.wfile.flush()
                faults.fire("stall" if stall else "reset" if reset else "truncate")
                if stall:
                    time.sleep(faults.stall_s)
                    stall = False
                    continue
                if reset:
                    # SO_LINGER 0 makes close() send RST instead of FIN: a "connection reset".
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.close_connection = True
                self.connection.close()
                return


class ReplicaHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, replica: HTTPReplica) -> None:
        self.replica = replica
        super().__init__((replica.host, 0), _RequestHandler)


class HTTPReplica:
    """Base of the HTTP replicas: a route table on a loopback port, started and stopped here.

    Subclasses call :meth:`route` in ``__init__``; ``faulty=True`` routes count towards and obey
    :class:`Faults`. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.faults = Faults()
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self.request_log: list[tuple[str, str, str | None]] = []
        self._server: ReplicaHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, func: Handler, *, faulty: bool = True) -> None:
        self.routes.append((method, re.compile(pattern), func, faulty))

    def serve_tree(self, url_prefix: str, root: Path, *, autoindex: bool = True) -> None:
        """Serve the folder ``root`` under ``url_prefix`` with Range and Apache-style indexes."""
        prefix = url_prefix.rstrip("/")

        def handle(ctx: RequestContext) -> None:
            rel = ctx.match.group("rel") or ""
            target = safe_join(root, rel)
            if target is None or not target.exists():
                ctx.handler.send_error_text(404, f"Not Found: {ctx.path}")
            elif target.is_dir():
                if not ctx.path.endswith("/"):
                    ctx.send_bytes(b"", status=301, headers={"Location": ctx.path + "/"})
                elif autoindex:
                    page = autoindex_html(
                        urllib.parse.unquote(ctx.path), target, self.faults.omit_from_listing
                    )
                    ctx.send_bytes(page.encode(), "text/html;charset=UTF-8")
                else:
                    ctx.handler.send_error_text(403, "Forbidden")
            else:
                ctx.send_file(target)

        self.route("GET", re.escape(prefix) + r"(?:/(?P<rel>.*))?", handle)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("replica not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HTTPReplica:
        self._server = ReplicaHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{type(self).__name__}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HTTPReplica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def safe_join(root: Path, rel: str) -> Path | None:
    """``root / rel`` unless ``rel`` climbs out of ``root``."""
    root = root.resolve()
    target = (root / rel.lstrip("/")).resolve()
    return target if target == root or root in target.parents else None


def autoindex_html(url_path: str, folder: Path, omit: Iterable[str] = ()) -> str:
    """An Apache 2.4 ``mod_autoindex`` page, as the EBI FTP HTTPS front end serves."""
    omit = set(omit)
    rows = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name in omit:
            continue
        name = entry.name + ("/" if entry.is_dir() else "")
        stat = entry.stat()
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(stat.st_mtime))
        size = "-" if entry.is_dir() else _human(stat.st_size)
        href = urllib.parse.quote(name)
        rows.append(
            f'<tr><td valign="top"><img src="/icons/{"folder" if entry.is_dir() else "unknown"}'
            f'.gif" alt="[{"DIR" if entry.is_dir() else "   "}]"></td><td><a href="{href}">'
            f"{html.escape(name)}</a></td>"
            f'<td align="right">{when}  </td><td align="right">{size:>5}</td><td>&nbsp;</td></tr>'
        )
    title = html.escape(url_path)
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
        f"  <title>Index of {title}</title>\n </head>\n <body>\n<h1>Index of {title}</h1>\n"
        "  <table>\n"
        '   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th>'
        '<th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
        '<th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>\n'
        '   <tr><th colspan="5"><hr></th></tr>\n'
        '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
        '<td><a href="../">Parent Directory</a></td><td>&nbsp;</td>'
        '<td align="right">  - </td><td>&nbsp;</td></tr>\n'
        + "\n".join(rows)
        + '\n   <tr><th colspan="5"><hr></th></tr>\n</table>\n</body></html>\n'
    )


def _human(n: int) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def guess_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return {
        ".json": "application/json",
        ".xml": "application/xml",
        ".html": "text/html",
        ".tif": "image/tiff",
        ".tiff": "image/tiff",
        ".jpg": "image/jpeg",
        ".txt": "text/plain",
    }.get(ext, "application/octet-stream")
