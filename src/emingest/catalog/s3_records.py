"""Record sidecars on S3: ``emingest catalog sync --from s3://bucket/prefix``.

The first slice of an S3 data root (docs/scaling.md, "Object storage design"): rebuild the
catalog from records that sit in a bucket in the data root's layout,
``<prefix>/<source>/<source_id>/<name>.json``, with the same rules as a local folder (hidden
names and anything inside an ``*.ome.zarr`` store are not records). Reads are anonymous
(:class:`~emingest.transports.s3.AnonymousS3`): a public bucket, or a MinIO bucket with an
anonymous read policy. Each row's ``record_path`` is the record's ``s3://`` URL.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import ValidationError

from emingest import storage
from emingest.catalog import CatalogRow, SyncResult
from emingest.records import VolumeRecord
from emingest.transports.retry import RetryPolicy
from emingest.transports.s3 import AnonymousS3


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the prefix may be empty
    (:func:`emingest.storage.parse_s3_url`, with the trailing slash listings want)."""
    bucket, prefix = storage.parse_s3_url(url)
    return bucket, f"{prefix}/" if prefix else ""


def _is_record_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _is_folder(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(".ome.zarr")


@dataclass
class S3Records:
    """The record sidecars under one S3 prefix; pass it to ``Catalog.sync`` as the data root."""

    url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    concurrency: int = 16
    policy: RetryPolicy | None = None

    def __post_init__(self) -> None:
        self.bucket, self.prefix = parse_s3_url(self.url)
        self._s3 = AnonymousS3(
            self.bucket, endpoint_url=self.endpoint_url, region=self.region, policy=self.policy
        )

    def keys(self) -> list[str]:
        """Every record key, ``<prefix><source>/<source_id>/<name>.json``, sorted."""
        found: list[str] = []
        sources, _ = self._s3.list_dir(self.prefix)
        for source in filter(_is_folder, sources):
            ids, _ = self._s3.list_dir(f"{self.prefix}{source}/")
            for source_id in filter(_is_folder, ids):
                folder = f"{self.prefix}{source}/{source_id}/"
                _, names = self._s3.list_dir(folder)
                found += [folder + n for n in names if "/" not in n and _is_record_name(n)]
        return sorted(found)

    def read_rows(self) -> tuple[list[CatalogRow], SyncResult]:
        """Like :func:`emingest.catalog.read_sidecars`: rows by id, the last duplicate winning,
        invalid records listed in ``skipped``. A listing or GET that still fails after the
        retries raises: a sync must not drop records it merely could not fetch."""
        result = SyncResult()
        rows: dict[str, CatalogRow] = {}
        keys = self.keys()
        # Records are small: many GETs in flight (the client keeps a session per thread).
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-records") as pool:
            fetched = list(zip(keys, pool.map(self._s3.get, keys), strict=True))
        for key, body in fetched:
            where = self._s3.s3_url(key)
            if body is None:  # deleted since the listing
                continue
            try:
                record = VolumeRecord.model_validate_json(body)
            except ValidationError as err:
                result.skipped.append((where, f"unreadable metadata record: {err}"))
                continue
            row = dataclasses.replace(CatalogRow.from_record(record, key), record_path=where)
            if row.id in rows:
                result.duplicates.append((row.id, where))
            rows[row.id] = row
        result.indexed = len(rows)
        return [rows[k] for k in sorted(rows)], result

    def __str__(self) -> str:
        return self.url


__all__ = ["S3Records", "parse_s3_url"]
