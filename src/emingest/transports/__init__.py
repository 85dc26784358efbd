"""How bytes move, with no archive knowledge: HTTP(S), FTP, anonymous S3, retries, safe names,
the cache.

Sources use :class:`Downloader` (URL -> verified file in the cache, with its sha256) and
:class:`HttpTransport` for API calls; every limit and timeout is a :class:`TransportSettings`.
"""

from __future__ import annotations

from emingest.transports.cache import DownloadedFile
from emingest.transports.download import Downloader
from emingest.transports.ftp import FtpTransport, RemoteEntry
from emingest.transports.hosts import HostLimiter
from emingest.transports.http import HttpTransport, RemoteFileInfo
from emingest.transports.names import local_path, name_from_url, safe_name, safe_relative_path
from emingest.transports.retry import RetryPolicy, parse_retry_after, retry_call
from emingest.transports.s3 import AnonymousS3
from emingest.transports.settings import TransportSettings, default_cache_dir

__all__ = [
    "AnonymousS3",
    "DownloadedFile",
    "Downloader",
    "FtpTransport",
    "HostLimiter",
    "HttpTransport",
    "RemoteEntry",
    "RemoteFileInfo",
    "RetryPolicy",
    "TransportSettings",
    "default_cache_dir",
    "local_path",
    "name_from_url",
    "parse_retry_after",
    "retry_call",
    "safe_name",
    "safe_relative_path",
]
