"""Where outputs live: a local folder or an S3 bucket, behind one small interface.

``storage.data_root`` is a folder or ``s3://bucket/prefix``. Everything the pipeline keeps
(OME-Zarr stores, record sidecars, resume journals, embeddings) is named by a
:class:`Location`: a data root plus a ``/``-separated key below it. Both kinds of root answer
the same questions (read, atomic write, exists, list, delete a tree, size of a tree, the
tensorstore kvstore spec of a folder), so the pipeline, the catalog sync, the SDK and the
server have no second code path for a bucket.

* :class:`LocalRoot` keeps today's behaviour exactly: temp file + rename (``atomic``), the
  files' modes, ``OSError`` on a full disk (mapped by ``diskspace``).
* :class:`S3Root`: small objects (records, journals, NGFF metadata) through boto3 (the
  ``s3`` extra); it signs requests (SigV4), follows the standard AWS credential chain and
  retries with its ``standard`` mode. A ``PUT`` is atomic by itself: a reader never sees half
  an object. Voxels never pass through boto3: tensorstore writes and reads chunks with its own
  ``s3`` kvstore (:meth:`DataRoot.kvstore`), one ``PUT`` per chunk or shard, from whichever
  process (thread or Dask worker) runs the region task.

Roots are picklable (a Dask task carries its output location); boto3 clients are made lazily,
one per thread and S3 configuration, and shared by every root of that configuration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emingest.atomic import atomic_write_bytes
from emingest.errors import ConfigError, DataRootError, MissingExtraError

S3_SCHEME = "s3://"


def is_s3_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(S3_SCHEME)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``); the prefix may be empty."""
    if not is_s3_url(url):
        raise ConfigError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ConfigError(f"{url!r} names no bucket; use s3://bucket/prefix")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"{url!r}: '.' and '..' are not allowed in an S3 prefix")
    return bucket, "/".join(parts)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _check_key(key: str) -> str:
    parts = key.split("/") if key else []
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a key below a data root: {key!r}")
    return key


class DataRoot(ABC):
    """A data root: a folder (:class:`LocalRoot`) or an S3 prefix (:class:`S3Root`).

    Keys are relative, ``/``-separated, never ``..``; ``""`` is the root itself.
    """

    is_local: bool

    @property
    @abstractmethod
    def url(self) -> str:
        """The root as a user writes it: a folder path or ``s3://bucket/prefix``."""

    @abstractmethod
    def url_of(self, key: str) -> str:
        """``key`` as a user reads it: a file path or an ``s3://`` URL."""

    @abstractmethod
    def kvstore(self, key: str) -> dict[str, Any]:
        """The tensorstore kvstore spec of the folder ``key`` (a trailing ``/``)."""

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none (a folder is none)."""

    @abstractmethod
    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``start:stop`` of an object whose size is known (0 <= start < stop <= size);
        ``FileNotFoundError`` when it is gone."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Write the whole object atomically (a reader sees the old bytes or the new)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; a missing one is fine."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True for an object, or a folder holding at least one object."""

    @abstractmethod
    def list_dir(self, key: str) -> tuple[list[str], list[str]]:
        """Names of the sub-folders and of the objects directly in folder ``key``, sorted."""

    @abstractmethod
    def walk(self, key: str) -> Iterator[tuple[str, int]]:
        """Every object below folder ``key``: (key relative to it, size in bytes)."""

    @abstractmethod
    def delete_tree(self, key: str) -> None:
        """Delete every object below folder ``key``."""

    @property
    def local_path(self) -> Path | None:
        """The folder, for a local root; None for object storage."""
        return None

    def location(self, key: str = "") -> Location:
        return Location(self, _check_key(key.strip("/")))

    def __str__(self) -> str:
        return self.url


class LocalRoot(DataRoot):
    """A folder on this machine: the code paths emingest always had."""

    is_local = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def url(self) -> str:
        return str(self.path)

    @property
    def local_path(self) -> Path | None:
        return self.path

    def file(self, key: str) -> Path:
        return self.path / key if key else self.path

    def url_of(self, key: str) -> str:
        return str(self.file(key))

    def kvstore(self, key: str) -> dict[str, Any]:
        return {"driver": "file", "path": str(self.file(key)) + "/"}

    def read(self, key: str) -> bytes | None:
        try:
            return self.file(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def size(self, key: str) -> int | None:
        try:
            st = self.file(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        with self.file(key).open("rb") as fh:
            fh.seek(start)
            return fh.read(stop - start)

    def write(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.file(key), data)

    def delete(self, key: str) -> None:
        self.file(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.file(key).exists()

    def list_dir(self, key: str) -> tuple[list[str], list[str]]:
        folder = self.file(key)
        if not folder.is_dir():
            return [], []
        entries = sorted(folder.iterdir())
        return [p.name for p in entries if p.is_dir()], [p.name for p in entries if p.is_file()]

    def walk(self, key: str) -> Iterator[tuple[str, int]]:
        base = self.file(key)
        for folder, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    yield Path(full).relative_to(base).as_posix(), os.stat(full).st_size

    def delete_tree(self, key: str) -> None:
        target = self.file(key)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalRoot) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("local", self.path))

    def __repr__(self) -> str:
        return f"LocalRoot({str(self.path)!r})"


@dataclass(frozen=True)
class S3Config:
    """How to reach the bucket: ``endpoint_url`` None is AWS itself (or ``AWS_ENDPOINT_URL``,
    which :mod:`emingest.config` reads); ``anonymous`` sends unsigned requests (public data)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    anonymous: bool = False
    credentials: str = "default"
    """tensorstore's credential source: ``default`` (the AWS chain) or ``environment``."""
    max_attempts: int = 6


class S3Root(DataRoot):
    """A prefix of an S3 bucket (AWS, MinIO, Ceph, moto...)."""

    is_local = False

    def __init__(self, url: str, config: S3Config | None = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.config = config or S3Config()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Root) and (self.bucket, self.prefix, self.config) == (
            other.bucket,
            other.prefix,
            other.config,
        )

    def __hash__(self) -> int:
        return hash((self.bucket, self.prefix, self.config))

    def __repr__(self) -> str:
        return f"S3Root({self.url!r}, endpoint={self.config.endpoint_url!r})"

    @property
    def url(self) -> str:
        return f"{S3_SCHEME}{_join(self.bucket, self.prefix)}"

    def key(self, key: str) -> str:
        """The object key in the bucket."""
        return _join(self.prefix, key)

    def url_of(self, key: str) -> str:
        return f"{S3_SCHEME}{_join(self.bucket, self.prefix, key)}"

    def kvstore(self, key: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "driver": "s3",
            "bucket": self.bucket,
            "path": self.key(key) + "/",
            "aws_region": self.config.region,
        }
        if self.config.endpoint_url:
            spec["endpoint"] = self.config.endpoint_url
        if self.config.anonymous:
            spec["aws_credentials"] = {"type": "anonymous"}
        elif self.config.credentials == "environment":
            spec["aws_credentials"] = {"type": "environment"}
        return spec

    @property
    def _client(self) -> Any:
        return _client_for(self.config)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as err:  # botocore's tree: ClientError, EndpointConnectionError...
            raise DataRootError(f"{what}: {_describe(err)}") from err

    def read(self, key: str) -> bytes | None:
        full = self.key(key)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=full)
            return bytes(answer["Body"].read())
        except Exception as err:
            if _is_missing(err):
                return None
            raise DataRootError(f"reading {self.url_of(key)}: {_describe(err)}") from err

    def size(self, key: str) -> int | None:
        if not key:
            return None
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as err:
            if _is_missing(err):
                return None
            raise DataRootError(f"reading {self.url_of(key)}: {_describe(err)}") from err
        return int(answer["ContentLength"])

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        try:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=self.key(key), Range=f"bytes={start}-{stop - 1}"
            )
            return bytes(answer["Body"].read())
        except Exception as err:
            if _is_missing(err):
                raise FileNotFoundError(f"{self.url_of(key)}: no such object") from err
            raise DataRootError(f"reading {self.url_of(key)}: {_describe(err)}") from err

    def write(self, key: str, data: bytes) -> None:
        self._call(
            f"writing {self.url_of(key)}",
            self._client.put_object,
            Bucket=self.bucket,
            Key=self.key(_check_key(key)),
            Body=data,
        )

    # -- conditional writes (S3's If-None-Match / If-Match): the leases of emingest.leases ----
    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is none."""
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key(key))
            return bytes(answer["Body"].read()), str(answer["ETag"])
        except Exception as err:
            if _is_missing(err):
                return None
            raise DataRootError(f"reading {self.url_of(key)}: {_describe(err)}") from err

    def write_if(self, key: str, data: bytes, *, etag: str | None) -> str | None:
        """Write only if the object is absent (``etag`` None) or still has ``etag``; the new
        ETag, or None when another writer got there first (412/409)."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            answer = self._client.put_object(
                Bucket=self.bucket, Key=self.key(_check_key(key)), Body=data, **condition
            )
            return str(answer["ETag"])
        except Exception as err:
            if _error_code(err) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return None
            raise DataRootError(f"writing {self.url_of(key)}: {_describe(err)}") from err

    def delete(self, key: str) -> None:
        self._call(
            f"deleting {self.url_of(key)}",
            self._client.delete_object,
            Bucket=self.bucket,
            Key=self.key(key),
        )

    def exists(self, key: str) -> bool:
        full = self.key(key)
        first = self._first_key(full)
        if first is None or first == full or not full:
            return first is not None
        # "a.json.tmp" or "a-b/..." may sort before "a/...": ask the folder itself
        return self._first_key(full + "/") is not None

    def _first_key(self, prefix: str) -> str | None:
        """The first key starting with ``prefix`` (in S3's order), or None."""
        page = next(self._pages(prefix, None, max_keys=1))
        contents = page.get("Contents") or []
        return str(contents[0]["Key"]) if contents else None

    def _pages(self, prefix: str, delimiter: str | None, max_keys: int = 1000) -> Iterator[Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            page = self._call(
                f"listing {S3_SCHEME}{self.bucket}/{prefix}", self._client.list_objects_v2, **kwargs
            )
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    def _folder(self, key: str) -> str:
        full = self.key(key)
        return f"{full}/" if full else ""

    def list_dir(self, key: str) -> tuple[list[str], list[str]]:
        folder = self._folder(key)
        folders: list[str] = []
        files: list[str] = []
        for page in self._pages(folder, "/"):
            folders += [
                p["Prefix"][len(folder) :].rstrip("/") for p in page.get("CommonPrefixes", [])
            ]
            files += [c["Key"][len(folder) :] for c in page.get("Contents", [])]
        return sorted(f for f in folders if f), sorted(f for f in files if f)

    def walk(self, key: str) -> Iterator[tuple[str, int]]:
        folder = self._folder(key)
        for page in self._pages(folder, None):
            for item in page.get("Contents", []):
                yield item["Key"][len(folder) :], int(item["Size"])

    def delete_tree(self, key: str) -> None:
        folder = self._folder(key)
        if not folder:
            raise ValueError("refusing to delete a whole bucket prefix root")
        batch: list[dict[str, str]] = []
        for page in self._pages(folder, None):
            batch += [{"Key": item["Key"]} for item in page.get("Contents", [])]
            while len(batch) >= 1000:
                self._delete_batch(batch[:1000])
                batch = batch[1000:]
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        answer = self._call(
            f"deleting under {self.url}",
            self._client.delete_objects,
            Bucket=self.bucket,
            Delete={"Objects": batch, "Quiet": True},
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise DataRootError(
                f"deleting {S3_SCHEME}{self.bucket}/{first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')} ({len(errors)} objects not deleted)"
            )


_clients = threading.local()
"""boto3 clients of this thread, one per :class:`S3Config`. Each is made from a session of
its own (boto3's sessions are not thread-safe) and costs tens of ms, so every root of one
configuration reuses its thread's; roots pickle without one (a Dask worker makes its own)."""


def _client_for(config: S3Config) -> Any:
    made: dict[S3Config, Any] | None = getattr(_clients, "by_config", None)
    if made is None:
        made = _clients.by_config = {}
    if config not in made:
        made[config] = _boto3_client(config)
    return made[config]


def _boto3_client(config: S3Config) -> Any:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError as err:
        raise MissingExtraError(
            "an s3:// data root needs boto3; install it with: pip install 'emingest[s3]'"
        ) from err
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": config.max_attempts},
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    if config.anonymous:
        options["signature_version"] = UNSIGNED
    session = boto3.session.Session()  # one per client: boto3's default session is not thread-safe
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        config=Config(**options),
    )


def _error_code(err: Exception) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _is_missing(err: Exception) -> bool:
    return _error_code(err) in ("NoSuchKey", "404", "NotFound")


def _describe(err: Exception) -> str:
    if type(err).__name__ == "NoCredentialsError":
        return (
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a "
            "profile), or storage.s3_anonymous = true for a public bucket"
        )
    code = _error_code(err)
    text = " ".join(str(err).split())[:300]
    return f"{code}: {text}" if code and code not in text else text


@dataclass(frozen=True)
class Location:
    """One file or folder below a data root: the currency of every output path."""

    root: DataRoot
    key: str

    def __truediv__(self, name: str) -> Location:
        return Location(self.root, _check_key(_join(self.key, name)))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.root, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def url(self) -> str:
        return self.root.url_of(self.key)

    @property
    def is_local(self) -> bool:
        return self.root.is_local

    @property
    def path(self) -> Path:
        """The file on this machine; only for a local root."""
        if not isinstance(self.root, LocalRoot):
            raise DataRootError(f"{self.url} is not a local file")
        return self.root.file(self.key)

    def kvstore(self) -> dict[str, Any]:
        return self.root.kvstore(self.key)

    def read_bytes(self) -> bytes:
        data = self.root.read(self.key)
        if data is None:
            raise FileNotFoundError(f"{self.url}: no such file or object")
        return data

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def size(self) -> int | None:
        return self.root.size(self.key)

    def read_range(self, start: int, stop: int) -> bytes:
        return self.root.read_range(self.key, start, stop)

    def write_bytes(self, data: bytes) -> None:
        self.root.write(self.key, data)

    def write_text(self, text: str) -> None:
        self.root.write(self.key, text.encode("utf-8"))

    def exists(self) -> bool:
        return self.root.exists(self.key)

    def unlink(self) -> None:
        self.root.delete(self.key)

    def list_dir(self) -> tuple[list[str], list[str]]:
        return self.root.list_dir(self.key)

    def walk(self) -> Iterator[tuple[str, int]]:
        return self.root.walk(self.key)

    def delete_tree(self) -> None:
        self.root.delete_tree(self.key)

    def __str__(self) -> str:
        return self.url


def as_root(value: DataRoot | Path | str) -> DataRoot:
    """A :class:`DataRoot` for a folder, an ``s3://`` URL (default S3 settings) or itself."""
    if isinstance(value, DataRoot):
        return value
    return S3Root(str(value)) if is_s3_url(value) else LocalRoot(Path(value))


def as_location(value: Location | Path | str) -> Location:
    """A :class:`Location` for a local path, an ``s3://`` URL (default S3 settings) or itself."""
    if isinstance(value, Location):
        return value
    if is_s3_url(value):
        return S3Root(str(value)).location()
    # below the file system's root, so that ``parent`` walks up like a path's
    absolute = os.path.abspath(value)
    return LocalRoot(Path(absolute).anchor).location(absolute.lstrip(os.sep))


__all__ = [
    "DataRoot",
    "LocalRoot",
    "Location",
    "S3Config",
    "S3Root",
    "as_location",
    "as_root",
    "is_s3_url",
    "parse_s3_url",
]
