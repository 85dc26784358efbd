"""The :class:`Downloader`: URL -> file in the download cache, by the right transport, with a
digest for the record.

:class:`Downloader` is what sources use: ``fetch(url, name)`` checks the local name
(:mod:`~emingest.transports.names`), serves a finished download from the cache, resumes a
partial one (:mod:`~emingest.transports.cache`), or downloads it over HTTP(S) or FTP; the
result carries ``size_bytes`` and ``sha256`` (:meth:`DownloadedFile.as_file_digest` is a
``records.FileDigest``). One process at a time downloads a given file (:mod:`emingest.locks`).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from pathlib import Path

from emingest.diskspace import storage_cause, storage_error
from emingest.errors import EntryNotFoundError, SourceError
from emingest.locks import download_lock_path, held
from emingest.transports.cache import DownloadedFile, PartialFile, cached_file, done_marker
from emingest.transports.ftp import FtpTransport
from emingest.transports.hosts import HostLimiter
from emingest.transports.http import HttpTransport
from emingest.transports.names import local_path, name_from_url
from emingest.transports.settings import TransportSettings


class Downloader:
    """Downloads into ``cache_dir`` with one shared per-host limit for HTTP and FTP."""

    def __init__(self, settings: TransportSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self.limiter = HostLimiter(settings.per_host_connections)
        self.http = HttpTransport(settings, limiter=self.limiter)
        self.ftp = FtpTransport(settings, limiter=self.limiter)
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        self.http.close()
        self.ftp.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, url: str, name: str | None = None) -> Path:
        """Where ``url`` lands: ``cache_dir / name`` (``name`` may hold safe sub-folders),
        by default the URL's last path part. Unsafe names raise ``RemoteFormatError``."""
        rel = name if name is not None else name_from_url(url)
        return local_path(self.cache_dir, rel, where=url)

    def cached(self, url: str, name: str | None = None) -> DownloadedFile | None:
        return cached_file(self.path_for(url, name), url)

    def fetch(
        self,
        url: str,
        name: str | None = None,
        *,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> DownloadedFile:
        """The file of ``url`` in the cache, downloaded (or resumed) if needed."""
        final = self.path_for(url, name)
        # threads of this process, then other processes (a second run of the same data)
        with self._lock_for(final), held(download_lock_path(final), what=f"download {url}"):
            hit = cached_file(final, url)
            if hit is not None and (expected_size is None or hit.size_bytes == expected_size):
                return hit
            try:
                done_marker(final).unlink(missing_ok=True)
                scheme = urllib.parse.urlsplit(url).scheme.lower()
                if scheme in ("http", "https"):
                    return self.http.download(
                        url, final, expected_size=expected_size, expected_sha256=expected_sha256
                    )
                if scheme == "ftp":
                    return self.ftp.download(
                        url, final, expected_size=expected_size, expected_sha256=expected_sha256
                    )
            except EntryNotFoundError:
                # nothing there to resume later: keep no partial file or state of it
                PartialFile(final).discard()
                raise
            except OSError as err:
                if storage_cause(err) is None:
                    raise
                needed = _still_needed(final, expected_size)
                raise storage_error(err, path=final, needed_bytes=needed) from err
            raise SourceError(f"{url}: unsupported URL scheme {scheme!r} (http, https, ftp)")

    def _lock_for(self, path: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())


def _still_needed(final: Path, expected_size: int | None) -> int | None:
    """Bytes a download still needs: its size (announced, or saved with the partial file)
    less what the partial file holds; None when the size is unknown."""
    partial = PartialFile(final)
    size = expected_size
    if size is None:
        try:
            size = json.loads(partial.state_path.read_text(encoding="utf-8")).get("size")
        except (OSError, ValueError, AttributeError):
            size = None
    return None if not isinstance(size, int) else max(0, size - partial.size())


__all__ = ["DownloadedFile", "Downloader", "done_marker"]
