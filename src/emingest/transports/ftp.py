"""Anonymous FTP with ftplib: listings (MLSD, NLST fallback) and ``REST``-resumed downloads.

The same policy as HTTP: a connect timeout, a read timeout on the control connection, the
stall timeout on data connections (no byte for ``stall_timeout_s``: abort and retry), the
per-host connection limit, and :func:`~emingest.transports.retry.retry_call` for transient
failures (4xx replies, resets, timeouts, short transfers). ftplib blocks: call these from
worker threads (the pipeline does).
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from emingest.diskspace import storage_cause, storage_error
from emingest.errors import (
    EntryNotFoundError,
    IntegrityError,
    LocalStorageError,
    SourceError,
    TransientSourceError,
)
from emingest.transports.cache import DownloadedFile, PartialFile
from emingest.transports.digest import RunningDigest
from emingest.transports.hosts import HostLimiter
from emingest.transports.retry import retry_call
from emingest.transports.settings import TransportSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteEntry:
    """One line of a listing. ``size`` and ``is_dir`` are None when the server did not say
    (NLST)."""

    name: str
    is_dir: bool | None = None
    size: int | None = None


def _split(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ftp" or not parts.hostname:
        raise SourceError(f"{url}: not an ftp:// URL")
    path = urllib.parse.unquote(parts.path) or "/"
    return parts.hostname, parts.port or 21, path


def _translate(err: BaseException, url: str, doing: str) -> Exception:
    if storage_cause(err) is not None:  # our disk, not the server: never retried
        return storage_error(err)
    if isinstance(err, ftplib.error_perm):
        text = str(err)
        if text.startswith("550"):
            return EntryNotFoundError(f"{url}: not found ({text.strip()})")
        return SourceError(f"{url}: server refused {doing} ({text.strip()})")
    if isinstance(err, ftplib.error_temp):
        return TransientSourceError(f"{url}: temporary failure while {doing} ({str(err).strip()})")
    if isinstance(err, TimeoutError | socket.timeout):
        return TransientSourceError(f"{url}: timed out or stalled while {doing} ({err})")
    if isinstance(err, ftplib.error_reply | ftplib.error_proto | EOFError | OSError):
        return TransientSourceError(f"{url}: connection broken while {doing} ({err!r})")
    return SourceError(f"{url}: {doing} failed: {err}")


class FtpTransport:
    """Anonymous FTP, one control connection per call, under the per-host limit."""

    def __init__(self, settings: TransportSettings, *, limiter: HostLimiter | None = None) -> None:
        self.settings = settings
        self.policy = settings.retry_policy()
        self.limiter = limiter or HostLimiter(settings.per_host_connections)

    def close(self) -> None:
        """Nothing is kept open between calls."""

    def _connect(self, host: str, port: int) -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(host, port, timeout=self.settings.connect_timeout_s)
        if ftp.sock is not None:
            ftp.sock.settimeout(self.settings.read_timeout_s)
        ftp.login()  # anonymous
        ftp.set_pasv(True)
        ftp.voidcmd("TYPE I")
        # ftplib opens data connections with this timeout: it is the stall detector there
        ftp.timeout = self.settings.stall_timeout_s
        return ftp

    @staticmethod
    def _quit(ftp: ftplib.FTP) -> None:
        with contextlib.suppress(OSError):
            ftp.close()

    # -- listings ------------------------------------------------------------------------------

    def list_dir(self, url: str) -> list[RemoteEntry]:
        """Entries of a folder, ``.``/``..`` left out. Names are raw: check them with
        :mod:`emingest.transports.names` before using them as local paths."""
        host, port, path = _split(url)

        def attempt() -> list[RemoteEntry]:
            with self.limiter.slot(host):
                try:
                    ftp = self._connect(host, port)
                except Exception as err:
                    raise _translate(err, url, "logging in") from err
                try:
                    try:
                        entries = [
                            RemoteEntry(
                                name,
                                facts.get("type", "").lower() in ("dir", "cdir", "pdir"),
                                int(facts["size"]) if facts.get("size", "").isdigit() else None,
                            )
                            for name, facts in ftp.mlsd(path, facts=["type", "size"])
                            if facts.get("type", "").lower() not in ("cdir", "pdir")
                        ]
                    except ftplib.error_perm as err:
                        if str(err)[:3] not in ("500", "501", "502", "504"):
                            raise
                        log.debug("%s: MLSD unsupported (%s); using NLST", url, err)
                        entries = [
                            RemoteEntry(n.rsplit("/", 1)[-1])
                            for n in ftp.nlst(path)
                            if n.rsplit("/", 1)[-1] not in (".", "..")
                        ]
                    return entries
                except Exception as err:
                    raise _translate(err, url, "listing") from err
                finally:
                    self._quit(ftp)

        return retry_call(attempt, self.policy, what=f"LIST {url}")

    def size(self, url: str) -> int | None:
        """``SIZE`` of a file, or None when the server does not answer it."""
        host, port, path = _split(url)

        def attempt() -> int | None:
            with self.limiter.slot(host):
                try:
                    ftp = self._connect(host, port)
                except Exception as err:
                    raise _translate(err, url, "logging in") from err
                try:
                    return ftp.size(path)
                except ftplib.error_perm as err:
                    if str(err).startswith("550"):
                        raise _translate(err, url, "SIZE") from err
                    return None
                except Exception as err:
                    raise _translate(err, url, "SIZE") from err
                finally:
                    self._quit(ftp)

        return retry_call(attempt, self.policy, what=f"SIZE {url}")

    # -- downloads -----------------------------------------------------------------------------

    def download(
        self,
        url: str,
        final: Path,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> DownloadedFile:
        """``RETR`` into ``.<name>.part`` (``REST`` to resume), verified, renamed into place."""
        host, port, path = _split(url)
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = PartialFile(final)
        state = partial.load_state(url)
        if state is None:
            state = {"url": url, "mode": "ftp"}
            partial.save_state(state)
        resumed_from = partial.size()
        digest = RunningDigest()
        moved = 0

        def attempt() -> None:
            nonlocal moved
            with self.limiter.slot(host):
                try:
                    ftp = self._connect(host, port)
                except Exception as err:
                    raise _translate(err, url, "logging in") from err
                try:
                    total = self._size(ftp, url, path)
                    if total is not None and state.get("size") not in (None, total):
                        partial.discard()  # the file changed on the server: start over
                    state["size"] = total
                    partial.save_state(state)
                    offset = partial.size()
                    if total is not None and offset > total:
                        partial.discard()
                        offset = 0
                    if total is not None and offset == total and total > 0:
                        digest.align(partial.part, offset)
                        return
                    conn, offset = self._retr(ftp, url, path, offset)
                    digest.align(partial.part, offset)
                    try:
                        with partial.open_at(offset) as fh:
                            while True:
                                data = conn.recv(self.settings.chunk_bytes)
                                if not data:
                                    break
                                fh.write(data)
                                digest.update(data)
                                moved += len(data)
                    finally:
                        conn.close()
                    ftp.voidresp()
                except (
                    EntryNotFoundError,
                    IntegrityError,
                    TransientSourceError,
                    LocalStorageError,
                ):
                    raise
                except Exception as err:
                    raise _translate(err, url, "downloading") from err
                finally:
                    self._quit(ftp)
            got = partial.size()
            if total is not None and got < total:
                raise TransientSourceError(f"{url}: transfer ended at byte {got} of {total}")
            if total is not None and got > total:
                partial.discard()
                raise IntegrityError(f"{url}: received {got} bytes, more than SIZE {total}")

        retry_call(attempt, self.policy, what=f"download {url}")
        digest.align(partial.part, partial.size())
        sha = digest.hexdigest()
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
            fetched_bytes=moved,
            resumed_from=resumed_from,
        )

    @staticmethod
    def _size(ftp: ftplib.FTP, url: str, path: str) -> int | None:
        try:
            return ftp.size(path)
        except ftplib.error_perm as err:
            if str(err).startswith("550"):
                raise EntryNotFoundError(f"{url}: not found ({str(err).strip()})") from err
            return None

    @staticmethod
    def _retr(ftp: ftplib.FTP, url: str, path: str, offset: int) -> tuple[socket.socket, int]:
        """The data connection of ``RETR path`` from ``offset`` (0 if REST is refused)."""
        if offset > 0:
            try:
                return ftp.transfercmd(f"RETR {path}", rest=offset), offset
            except ftplib.error_perm as err:
                if str(err)[:3] not in ("500", "501", "502", "504", "350"):
                    raise
                log.info("%s: REST refused (%s); downloading from the start", url, err)
        return ftp.transfercmd(f"RETR {path}"), 0


__all__ = ["FtpTransport", "RemoteEntry"]
