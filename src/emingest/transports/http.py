"""HTTP(S) with requests: small GETs, JSON, and resumable, verified, optionally parallel downloads.

* Every request has a connect and a read timeout; a download's read timeout is the stall
  timeout (no byte for ``stall_timeout_s``: the request is aborted and retried, resuming).
* 429/5xx, resets, timeouts and short bodies become :class:`TransientSourceError` (with the
  server's ``Retry-After``) and are retried by :mod:`emingest.transports.retry`; 404/410 become
  :class:`EntryNotFoundError`; other statuses :class:`SourceError`.
* A download streams into ``.<name>.part``, resumes it with ``Range`` (+ ``If-Range``), checks
  the size against Content-Length, computes sha256 and renames into place. Files of at least
  ``parallel_min_bytes`` on a server that sends ``Accept-Ranges: bytes`` and a Content-Length
  are fetched as parallel Range segments, up to ``per_host_connections`` at once; otherwise
  (or if the server stops honouring Range) one stream.
* Redirects stay inside the archive (:mod:`emingest.transports.redirects`): a hop to another
  scheme, host or port is refused before it is requested, unless listed in ``redirect_hosts``;
  at most ``max_redirects`` are followed. Both raise :class:`RemoteFormatError`, never retried.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from emingest.diskspace import storage_cause, storage_error
from emingest.errors import (
    EmingestError,
    EntryNotFoundError,
    IntegrityError,
    RemoteFormatError,
    SourceError,
    TransientSourceError,
)
from emingest.transports.cache import DownloadedFile, PartialFile
from emingest.transports.digest import PrefixHasher, RunningDigest
from emingest.transports.hosts import HostLimiter
from emingest.transports.redirects import ArchiveSession
from emingest.transports.retry import parse_retry_after, retry_call
from emingest.transports.settings import TransportSettings

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class RemoteFileInfo:
    """What a HEAD says about a file."""

    url: str
    size: int | None
    accept_ranges: bool
    etag: str | None
    last_modified: str | None


class _RangeRefused(Exception):
    """The server answered a Range request with the whole file: fall back to one stream."""


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def translate_error(err: BaseException, url: str, doing: str) -> Exception:
    """A requests/urllib3 exception as one of ours (transient where a retry may help): the
    one translation of every HTTP client in emingest (plain HTTP and anonymous S3). A full
    local disk is a :class:`LocalStorageError`, never retried."""
    if storage_cause(err) is not None and not isinstance(err, requests.RequestException):
        return storage_error(err)
    timeouts = requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError
    if isinstance(err, timeouts):
        return TransientSourceError(f"{url}: timed out while {doing} ({err})")
    if isinstance(
        err,
        requests.exceptions.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.HTTPError
        | ConnectionError,
    ):
        return TransientSourceError(f"{url}: connection broken while {doing} ({err})")
    if isinstance(err, requests.exceptions.TooManyRedirects):
        return RemoteFormatError(
            f"{url}: refused after too many redirects ({err}); "
            "raise the transport.max_redirects setting if the archive really needs more"
        )
    if isinstance(err, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return SourceError(f"{url}: not a valid URL ({err}); check the source's URL settings")
    if isinstance(err, OSError):
        return TransientSourceError(f"{url}: I/O error while {doing} ({err})")
    return SourceError(f"{url}: {doing} failed: {err}")


def raise_for_status(resp: requests.Response, url: str) -> None:
    """Map an HTTP error status to the error tree (the response is closed first)."""
    status = resp.status_code
    if status < 400:
        return
    try:
        text = resp.text[:300]
    except Exception:  # noqa: BLE001 - the body of an error is only a hint
        text = ""
    finally:
        resp.close()
    detail = " ".join(text.split())
    reason = f"HTTP {status} {resp.reason or ''}".strip()
    where = f"{url}: {reason}" + (f" ({detail[:200]})" if detail else "")
    if status in (404, 410):
        raise EntryNotFoundError(where)
    if status in TRANSIENT_STATUS or status >= 500:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        raise TransientSourceError(where, retry_after=retry_after)
    raise SourceError(where)


class HttpTransport:
    """One requests session with per-host limits, timeouts and the retry policy."""

    def __init__(self, settings: TransportSettings, *, limiter: HostLimiter | None = None) -> None:
        self.settings = settings
        self.policy = settings.retry_policy()
        self.limiter = limiter or HostLimiter(settings.per_host_connections)
        self._session = ArchiveSession(
            redirect_hosts=settings.redirect_hosts, max_redirects=settings.max_redirects
        )
        self._session.trust_env = settings.trust_env
        self._session.headers["User-Agent"] = settings.user_agent
        adapter = HTTPAdapter(
            pool_connections=16, pool_maxsize=settings.per_host_connections, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small requests ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One request (no retry); error statuses raised as our errors."""
        timeout = (self.settings.connect_timeout_s, read_timeout or self.settings.read_timeout_s)
        try:
            resp = self._session.request(
                method, url, params=params, headers=headers, stream=stream, timeout=timeout
            )
        except EmingestError:
            raise  # a refused redirect (RemoteFormatError), already ours
        except Exception as err:
            raise translate_error(err, url, f"sending {method}") from err
        raise_for_status(resp, resp.url or url)
        return resp

    def get_bytes(self, url: str, *, params: dict[str, Any] | None = None) -> bytes:
        """The body of a GET, retried; a body shorter than Content-Length is retried too."""

        def attempt() -> bytes:
            with self.limiter.slot(_host(url)):
                resp = self._send("GET", url, params=params, stream=True)
                try:
                    return resp.content
                except Exception as err:
                    raise translate_error(err, url, "reading the answer") from err
                finally:
                    resp.close()

        return retry_call(attempt, self.policy, what=f"GET {url}")

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        """The JSON of a GET; a body that is not JSON raises :class:`RemoteFormatError`."""
        import json

        body = self.get_bytes(url, params=params)
        try:
            return json.loads(body)
        except ValueError as err:
            shown = body[:120].decode("utf-8", "replace")
            raise RemoteFormatError(f"{url}: answer is not JSON ({err}): {shown!r}") from err

    def head(self, url: str) -> RemoteFileInfo:
        """Size, Range support and validators of ``url`` (HEAD, retried)."""

        def attempt() -> RemoteFileInfo:
            with self.limiter.slot(_host(url)):
                resp = self._send("HEAD", url)
                resp.close()
            length = resp.headers.get("Content-Length")
            return RemoteFileInfo(
                url=url,
                size=int(length) if length and length.isdigit() else None,
                accept_ranges="bytes" in resp.headers.get("Accept-Ranges", "").lower(),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
            )

        return retry_call(attempt, self.policy, what=f"HEAD {url}")

    # -- downloads -----------------------------------------------------------------------------

    def download(
        self,
        url: str,
        final: Path,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> DownloadedFile:
        """Download ``url`` to ``final`` (resuming ``.<name>.part``), verified, atomically."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = PartialFile(final)
        state = partial.load_state(url)
        resumed_from = partial.size() if state is not None else 0
        if state is None:
            state = {"url": url, "mode": "stream"}
            probe = self._probe(url)
            if (
                probe is not None
                and probe.size is not None
                and probe.accept_ranges
                and probe.size >= self.settings.parallel_min_bytes
            ):
                state = {
                    "url": url,
                    "mode": "segments",
                    "size": probe.size,
                    "etag": probe.etag,
                    "last_modified": probe.last_modified,
                    "segment_bytes": self.settings.segment_bytes,
                    "done": [],
                }
            partial.save_state(state)
        fetched = 0
        sha: str | None = None
        if state.get("mode") == "segments":
            try:
                fetched, sha = self._download_segments(url, partial, state)
            except _RangeRefused:
                log.info("%s: server ignores Range; falling back to one stream", url)
                partial.discard()
                state = {"url": url, "mode": "stream"}
                partial.save_state(state)
        if sha is None:
            sha, more = self._download_stream(url, partial, state)
            fetched += more
        size = partial.finalize(
            url=url,
            sha256=sha,
            expected_size=expected_size if expected_size is not None else state.get("size"),
            expected_sha256=expected_sha256,
        )
        return DownloadedFile(
            path=final,
            name=final.name,
            url=url,
            size_bytes=size,
            sha256=sha,
            fetched_bytes=fetched,
            resumed_from=resumed_from,
        )

    def _probe(self, url: str) -> RemoteFileInfo | None:
        """HEAD, when a parallel download could apply; a server that refuses HEAD is fine."""
        if not self.settings.parallel_segments:
            return None
        try:
            return self.head(url)
        except (EntryNotFoundError, RemoteFormatError):
            raise  # missing, or a redirect out of the archive: a GET would fare no better
        except SourceError as err:  # 405 and friends: one stream will do
            log.debug("%s: HEAD failed (%s); downloading as one stream", url, err)
            return None

    def _download_stream(
        self, url: str, partial: PartialFile, state: dict[str, Any]
    ) -> tuple[str, int]:
        """One GET stream, resumed with Range after a failure. Returns (sha256, bytes moved)."""
        digest = RunningDigest()
        moved = 0

        def attempt() -> None:
            nonlocal moved
            offset = partial.size()
            total = state.get("size")
            if total is not None and offset == total and offset > 0:
                digest.align(partial.part, offset)
                return  # complete already (e.g. killed between the last byte and the rename)
            headers = {"Accept-Encoding": "identity"}
            if offset > 0 and state.get("ranges"):
                headers["Range"] = f"bytes={offset}-"
                validator = state.get("etag") or state.get("last_modified")
                if validator:
                    headers["If-Range"] = validator
            else:
                offset = 0
            with self.limiter.slot(_host(url)):
                try:
                    resp = self._send(
                        "GET",
                        url,
                        headers=headers,
                        stream=True,
                        read_timeout=self.settings.stall_timeout_s,
                    )
                except SourceError as err:
                    if "HTTP 416" in str(err) and offset > 0:
                        partial.discard()  # the partial does not fit the file: start over
                        partial.save_state(state | {"ranges": False})
                        state["ranges"] = False
                        raise TransientSourceError(f"{url}: resume refused (416)") from err
                    raise
                try:
                    start, total = self._accept(resp, url, offset)
                    state.update(
                        size=total,
                        ranges="bytes" in resp.headers.get("Accept-Ranges", "").lower()
                        or resp.status_code == 206,
                        etag=resp.headers.get("ETag"),
                        last_modified=resp.headers.get("Last-Modified"),
                    )
                    partial.save_state(state)
                    digest.align(partial.part, start)
                    with partial.open_at(start) as fh:
                        try:
                            for chunk in resp.iter_content(self.settings.chunk_bytes):
                                fh.write(chunk)
                                digest.update(chunk)
                                moved += len(chunk)
                        except Exception as err:
                            raise translate_error(err, url, "reading the body") from err
                finally:
                    resp.close()
            got = partial.size()
            if total is not None and got < total:
                raise TransientSourceError(f"{url}: body ended at byte {got} of {total}")
            if total is not None and got > total:
                partial.discard()
                raise IntegrityError(f"{url}: received {got} bytes, more than the {total} sent")

        retry_call(attempt, self.policy, what=f"download {url}")
        digest.align(partial.part, partial.size())
        return digest.hexdigest(), moved

    @staticmethod
    def _accept(resp: requests.Response, url: str, offset: int) -> tuple[int, int | None]:
        """(where this body starts in the file, the file's size if known)."""
        length = resp.headers.get("Content-Length")
        if resp.status_code == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if m is None or int(m.group(1)) != offset:
                raise TransientSourceError(
                    f"{url}: 206 with Content-Range {resp.headers.get('Content-Range')!r} "
                    f"for a request from byte {offset}"
                )
            total = int(m.group(3)) if m.group(3) != "*" else None
            return offset, total
        if resp.status_code != 200:
            raise SourceError(f"{url}: unexpected HTTP {resp.status_code} for a download")
        return 0, int(length) if length and length.isdigit() else None

    def _download_segments(
        self, url: str, partial: PartialFile, state: dict[str, Any]
    ) -> tuple[int, str]:
        """Parallel Range segments into a preallocated partial file, hashed as the finished
        prefix grows. Returns (bytes moved, sha256)."""
        size = int(state["size"])
        seg = int(state["segment_bytes"])
        done: set[int] = set(state.get("done", []))
        segments = [(i, a, min(size, a + seg) - 1) for i, a in enumerate(range(0, size, seg))]
        todo = [s for s in segments if s[0] not in done]
        if partial.size() != size:  # new, or the partial file went missing: start over
            done.clear()
            todo = segments
            with partial.open_at(0) as fh:
                fh.truncate(size)
        lock = threading.Lock()
        moved = 0
        validator = state.get("etag") or state.get("last_modified")
        fd = os.open(partial.part, os.O_WRONLY)
        hasher = PrefixHasher(partial.part, size, seg, done)

        def fetch(index: int, first: int, last: int) -> None:
            nonlocal moved
            pos = first

            def attempt() -> None:
                nonlocal pos, moved
                headers = {"Accept-Encoding": "identity", "Range": f"bytes={pos}-{last}"}
                if validator:
                    headers["If-Range"] = validator
                with self.limiter.slot(_host(url)):
                    resp = self._send(
                        "GET",
                        url,
                        headers=headers,
                        stream=True,
                        read_timeout=self.settings.stall_timeout_s,
                    )
                    try:
                        if resp.status_code != 206:
                            raise _RangeRefused(url)
                        got = resp.headers.get("Content-Range", "").strip()
                        m = _CONTENT_RANGE.fullmatch(got)
                        ok = m is not None and int(m.group(1)) == pos
                        if not ok or m.group(3) not in ("*", str(size)):  # type: ignore[union-attr]
                            raise _RangeRefused(url)
                        try:
                            for chunk in resp.iter_content(self.settings.chunk_bytes):
                                if pos + len(chunk) > last + 1:
                                    raise IntegrityError(f"{url}: segment {index} overran")
                                os.pwrite(fd, chunk, pos)
                                pos += len(chunk)
                                with lock:
                                    moved += len(chunk)
                        except (IntegrityError, _RangeRefused):
                            raise
                        except Exception as err:
                            raise translate_error(err, url, f"reading segment {index}") from err
                    finally:
                        resp.close()
                if pos != last + 1:
                    raise TransientSourceError(
                        f"{url}: segment {index} ended at byte {pos} of {first}-{last}"
                    )

            retry_call(attempt, self.policy, what=f"download {url} segment {index}")
            with lock:
                done.add(index)
                partial.save_state(state | {"done": sorted(done)})
            hasher.segment_done(index)

        try:
            workers = max(1, min(self.settings.per_host_connections, len(todo)))
            with ThreadPoolExecutor(workers, thread_name_prefix="emingest-segment") as pool:
                futures = [pool.submit(fetch, *s) for s in todo]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = next((f for f in finished if f.exception() is not None), None)
                if failed is not None:
                    for f in futures:
                        f.cancel()
                    raise failed.exception()  # type: ignore[misc]
        finally:
            os.close(fd)
            hasher.close()
        state["done"] = sorted(done)
        return moved, hasher.hexdigest()


__all__ = ["HttpTransport", "RemoteFileInfo", "raise_for_status", "translate_error"]
