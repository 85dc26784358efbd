"""A textured synthetic volume, ingested through the real pipeline and embedded once per session.

Tests that change an index get their own catalog file (``isolated``): the records are re-indexed
there from the same sidecars, so the stores (and their vectors) are shared and never copied.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from emingest.catalog import open_catalog
from emingest.config import Settings, load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.records import locate_in_root
from emingest.sources import create_source
from emingest.storage import Location
from emingest.testing.synthetic import textured_classes

VOXEL_NM = 8.0
SHAPE = (8, 384, 640)  # 3 x 5 regions of 128 px: every class, several times


@dataclass
class Textured:
    settings: Settings
    record_id: str
    classes: np.ndarray
    """Class of every voxel of level 0."""
    tif: Path
    volume: np.ndarray
    store: Location
    """The volume's OME-Zarr store (a folder, or a prefix of a bucket)."""

    def class_at(self, zyx: Any) -> int:
        return int(self.classes[int(zyx[0]), int(zyx[1]), int(zyx[2])])


def settings_overrides(root: Path, **embed: Any) -> dict[str, Any]:
    return {
        "storage": {"data_root": str(root / "data"), "chunk_shape": [8, 64, 64]},
        "pipeline": {"workers": 2, "tile_bytes": 256 << 10},
        "logging": {"log_dir": str(root / "logs")},
        "embed": {"slice_every": 2, **embed},
    }


def make_settings(root: Path, **embed: Any) -> Settings:
    return load_settings(environ={}, overrides=settings_overrides(root, **embed))


def ingest_textured(
    root: Path, name: str = "textured", seed: int = 7, settings: Settings | None = None
) -> Textured:
    """The textured volume ingested below ``root`` (its data root, unless ``settings`` name
    another, e.g. an s3:// one)."""
    settings = settings or make_settings(root)
    volume, classes = textured_classes(SHAPE, seed=seed)
    tif = root / f"{name}.tif"
    tifffile.imwrite(tif, volume)
    source = create_source("local", settings)
    jobs = [VolumeJob(source, ref, (VOXEL_NM,) * 3) for ref in source.discover([str(tif)])]
    with Pipeline(settings) as pipe:
        [result] = pipe.run(jobs)
    assert result.status == "complete", result.status
    rec = result.record
    assert rec is not None
    rid = f"{rec.source}/{rec.source_id}/{rec.name}"
    store = locate_in_root(rec.local_paths.volume, settings.storage.root())
    return Textured(settings, rid, classes, tif, volume, store)


@pytest.fixture(scope="session")
def textured(tmp_path_factory: pytest.TempPathFactory) -> Textured:
    """Ingested and embedded with the default (scattering) embedder."""
    from emingest.vectors import embed_records

    data = ingest_textured(tmp_path_factory.mktemp("textured"))
    results = embed_records(data.settings)
    assert [r.status for r in results] == ["embedded"]
    return data


@pytest.fixture
def isolated(textured: Textured, tmp_path: Path) -> Iterator[Settings]:
    """The embedded volume's settings with a catalog file (and vector tables) of its own."""
    settings = textured.settings.model_copy(deep=True)
    settings.catalog.db_path = tmp_path / "catalog.sqlite"
    settings.embed.index_dir = tmp_path / "vectors"
    with open_catalog(settings) as cat:
        cat.sync(settings.storage.data_root)
    yield settings


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A real PostgreSQL 16 with pgvector, from the ``pgserver`` wheel (unix socket only).

    Run as root, pgserver starts the server as its own user, which cannot enter pytest's
    private temporary folders (0700): the data folder is made directly under the temp dir.
    """
    pgserver = pytest.importorskip("pgserver", reason="pgserver is in the test extra")
    folder = Path(tempfile.mkdtemp(prefix="emingest-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
