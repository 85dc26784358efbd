"""An ``s3://`` data root on moto's S3 server, for tests of the pipeline, catalog, SDK and
server against object storage (``storage.data_root = "s3://bucket/prefix"``).

The bucket is private: requests are signed with the dummy credentials moto accepts, which the
test puts in the process environment (tensorstore's ``s3`` kvstore and boto3 both read the
standard ``AWS_*`` variables, and Dask workers started by the test inherit them).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emingest.config import Settings, load_settings
from emingest.testing.openorganelle import S3Replica

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "emingest-test",
    "AWS_SECRET_ACCESS_KEY": "emingest-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_numbers = itertools.count()


@dataclass
class S3DataRoot:
    """One private bucket on a running :class:`S3Replica`, named uniquely per test."""

    replica: S3Replica
    bucket: str
    prefix: str = "emingest/data"

    @classmethod
    def create(cls, replica: S3Replica, prefix: str = "emingest/data") -> S3DataRoot:
        bucket = f"out-{next(_numbers)}"
        replica.create_bucket(bucket, public=False)
        return cls(replica, bucket, prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def endpoint_url(self) -> str:
        return self.replica.endpoint_url

    def storage(self, work_dir: Path) -> dict[str, Any]:
        """The ``[storage]`` settings of this data root (a local ``work_dir`` for locks,
        logs, caches and the SQLite catalog)."""
        return {
            "data_root": self.url,
            "s3_endpoint_url": self.endpoint_url,
            "s3_credentials": "environment",
            "work_dir": str(work_dir),
        }

    def settings(self, work_dir: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
        merged: dict[str, Any] = {k: dict(v) for k, v in (overrides or {}).items()}
        merged["storage"] = {**self.storage(work_dir), **merged.get("storage", {})}
        return load_settings(environ={}, overrides=merged)

    def object_keys(self) -> list[str]:
        """Every key in the bucket, sorted (boto3, independent of emingest's own client)."""
        import boto3

        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1"
        )
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def get(self, key: str) -> bytes:
        import boto3

        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1"
        )
        return bytes(client.get_object(Bucket=self.bucket, Key=key)["Body"].read())


@dataclass
class S3Ingested:
    """One small volume the real pipeline wrote into an :class:`S3DataRoot` (the read-back
    tests of the SDK, the catalog and the server share it)."""

    root: S3DataRoot
    settings: Settings
    array: Any
    """The voxels, z y x (a numpy array)."""
    id: str
    record_url: str
    store_key: str
    """The store's key below the data root (``<source>/<source_id>/<name>.ome.zarr``)."""

    def object(self, key: str) -> bytes:
        """An object below the data root, read with boto3 (not through emingest)."""
        return self.root.get(f"{self.root.prefix}/{key}")


__all__ = ["CREDENTIALS", "S3DataRoot", "S3Ingested"]
