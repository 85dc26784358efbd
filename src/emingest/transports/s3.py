"""Anonymous S3: unsigned GETs and delimiter listings of one public bucket, no archive knowledge.

Public EM buckets (AWS Open Data) allow anonymous reads. Nothing here signs a request or looks
for credentials, profiles or instance metadata: boto-based clients probe for those first, which
costs seconds per open on a machine outside AWS. Bulk voxel reads go through tensorstore's own
S3 driver; this is for the small documents around them (JSON metadata, listings).
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import requests

from emingest.errors import EntryNotFoundError, RemoteFormatError, SourceError, TransientSourceError
from emingest.transports.http import translate_error
from emingest.transports.redirects import ArchiveSession
from emingest.transports.retry import RetryPolicy, parse_retry_after, retry_call
from emingest.transports.urls import join_below

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class AnonymousS3:
    """Unsigned GETs and delimiter listings of one bucket; small documents only.

    ``endpoint_url`` None means AWS itself (virtual-hosted style in ``region``); a mirror or a
    loopback server is addressed path-style. Transient failures (timeouts, resets, 429, 5xx)
    are retried under ``policy``, honouring ``Retry-After``.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.bucket = bucket
        if endpoint_url:
            self.base = f"{endpoint_url.rstrip('/')}/{bucket}"
        else:
            self.base = f"https://{bucket}.s3.{region}.amazonaws.com"
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._policy = policy or RetryPolicy()
        self._local = threading.local()

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            # its redirects stay on the bucket's host, like every archive request's
            session = ArchiveSession()
            session.trust_env = False  # no netrc credentials on an anonymous request
            self._local.session = session
        return session

    def url(self, key: str) -> str:
        """The object's URL; a key that would leave the bucket (``..``, encoded dots or
        slashes) raises :class:`RemoteFormatError` before any request."""
        return join_below(self.base, key)

    def s3_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _request(self, url: str, params: dict[str, str] | None = None) -> bytes | None:
        try:
            answer = self._session.get(url, params=params, timeout=self._timeout)
            body = answer.content
        except Exception as err:
            # the same rules as every HTTP request: resets, short bodies (requests'
            # ChunkedEncodingError), timeouts are transient and retried
            raise translate_error(err, f"GET {url}", "reading the answer") from err
        if answer.status_code == 404:
            return None
        if answer.status_code == 429 or answer.status_code >= 500:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            raise TransientSourceError(
                f"GET {url}: HTTP {answer.status_code} {s3_error_code(body)}",
                retry_after=retry_after,
            )
        if answer.status_code != 200:
            raise SourceError(
                f"GET {url}: HTTP {answer.status_code} {s3_error_code(body)} (the bucket "
                f"{self.bucket!r} must allow anonymous reads; check the bucket and endpoint)"
            )
        return body

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        return retry_call(lambda: self._request(self.url(key)), self._policy, what=self.s3_url(key))

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """(sub-folder names, object names) directly under ``prefix`` (ending with "/")."""
        folders: list[str] = []
        names: list[str] = []
        token = None
        while True:
            params = {"list-type": "2", "prefix": prefix, "delimiter": "/"}
            if token:
                params["continuation-token"] = token
            body = retry_call(
                lambda p=params: self._request(self.base + "/", p),  # type: ignore[misc]
                self._policy,
                what=f"listing {self.s3_url(prefix)}",
            )
            if body is None:
                raise EntryNotFoundError(f"bucket {self.s3_url('')} does not exist")
            try:
                root = ET.fromstring(body)
            except ET.ParseError as err:
                raise RemoteFormatError(f"listing {self.s3_url(prefix)}: not XML: {err}") from err
            for node in root.iter(f"{_S3_NS}CommonPrefixes"):
                folders.append((node.findtext(f"{_S3_NS}Prefix") or "")[len(prefix) :].strip("/"))
            for node in root.iter(f"{_S3_NS}Contents"):
                names.append((node.findtext(f"{_S3_NS}Key") or "")[len(prefix) :])
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                return [f for f in folders if f], [n for n in names if n]


def s3_error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 XML error body ("NoSuchKey", "SlowDown"...), or ""."""
    try:
        return ET.fromstring(body).findtext("Code") or ""
    except ET.ParseError:
        return ""


__all__ = ["AnonymousS3", "s3_error_code"]
