"""Embeddings on an s3:// data root (moto): written into the volume's store in the bucket,
resumed after an interruption, searched and synced; and ``embed --executor dask`` giving the
vectors of the thread pool bit for bit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import emingest.vectors.embed as embed_module
from emingest.cli import app
from emingest.testing.s3_root import S3DataRoot
from emingest.vectors import embed_records, search_like, sync_index
from emingest.vectors.embed import make_encoder
from emingest.vectors.store import EmbeddingStore

from .conftest import Textured, ingest_textured, settings_overrides


def _same_vectors(a: EmbeddingStore, b: EmbeddingStore) -> None:
    pairs = list(zip(a.iter_chunks(), b.iter_chunks(), strict=True))
    assert pairs
    for (c1, v1), (c2, v2) in pairs:
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(v1, v2)  # bit for bit


def test_embed_search_and_resume_on_an_s3_data_root(
    tmp_path: Path,
    s3_root: S3DataRoot,
    textured: Textured,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = settings_overrides(tmp_path)
    del overrides["storage"]["data_root"]
    overrides["pipeline"]["workers"] = 1  # blocks in order: the interruption is deterministic
    settings = s3_root.settings(tmp_path / "work", overrides)
    data = ingest_textured(tmp_path, settings=settings)
    assert not data.store.is_local
    key = make_encoder(settings).space.key
    store = EmbeddingStore(data.store, key)

    # interrupted after two blocks: the journal object and the blocks written stay in the bucket
    real = embed_module.block_vectors
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "block_vectors", failing)
    [first] = embed_records(settings)
    assert first.status.startswith("error: OSError")
    monkeypatch.setattr(embed_module, "block_vectors", real)
    prefix = f"{s3_root.prefix}/{data.store.key}/embeddings/"
    keys = s3_root.object_keys()
    assert f"{prefix}.{key}.journal" in keys
    attrs = store.attrs()
    assert attrs is not None and attrs["complete"] is False

    with caplog.at_level(logging.INFO, logger="emingest.vectors.embed"):
        [second] = embed_records(settings)
    assert (second.status, second.patches) == ("embedded", 240)
    assert "resuming, 2 blocks already embedded" in caplog.text
    assert store.is_complete()

    keys = s3_root.object_keys()
    assert f"{prefix}.{key}.journal" not in keys
    chunks = [k for k in keys if k.startswith(f"{prefix}{key}/vectors/c/")]
    assert chunks and any(k.startswith(f"{prefix}{key}/centers/c/") for k in keys)
    assert f"{prefix}zarr.json" in keys and f"{prefix}{key}/zarr.json" in keys
    assert not (tmp_path / "work" / s3_root.prefix).exists()  # nothing of the store on disk
    # the vectors of the local run, and the very bytes of its chunk files
    local = EmbeddingStore(textured.store, key)
    _same_vectors(store, local)
    for k in chunks:
        relative = k[len(f"{prefix}{key}/") :]
        assert s3_root.get(k) == (local.location / relative).read_bytes()

    # search by example and the index rebuilt from the bucket; faiss files in the work dir
    hits = search_like(settings, data.record_id, (2, 96, 160), k=3)
    assert hits[0].record_id == data.record_id and hits[0].center_zyx == (2, 96, 160)
    assert hits[0].distance == pytest.approx(0.0, abs=1e-4)
    assert sync_index(settings) == {key: 240}
    assert (tmp_path / "work" / "vectors").is_dir()


def test_embed_on_dask_gives_the_vectors_of_threads(tmp_path: Path, textured: Textured) -> None:
    data = ingest_textured(tmp_path, seed=7)  # the session's voxels, embedded by threads there
    env = {
        "EMINGEST_PIPELINE__TILE_BYTES": str(256 << 10),
        "EMINGEST_EMBED__SLICE_EVERY": "2",
        "EMINGEST_LOGGING__LOG_DIR": str(tmp_path / "logs"),
    }
    root = str(data.settings.storage.data_root)
    args = ["embed", data.record_id, "--data-root", root]
    result = CliRunner().invoke(
        app, [*args, "--executor", "dask", "--scheduler", "local", "-j", "2"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "embedded, 240 patches" in result.output
    key = make_encoder(data.settings).space.key
    _same_vectors(EmbeddingStore(data.store, key), EmbeddingStore(textured.store, key))
    bad = CliRunner().invoke(app, [*args, "--executor", "nope"], env=env)
    assert bad.exit_code == 2
