"""`emingest embed`, `search` and `vectors sync` as a user runs them; resume after SIGKILL;
the pgvector backend end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from emingest.cli import app
from emingest.config import Settings
from emingest.vectors import search_like, sync_index
from emingest.vectors.embed import make_encoder
from emingest.vectors.store import EmbeddingStore

from .conftest import Textured, ingest_textured
from .test_search import query_points


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_sigkill_then_rerun_gives_the_same_vectors(tmp_path: Path, textured: Textured) -> None:
    data = ingest_textured(tmp_path, seed=7)  # the same voxels as the session's volume
    key = make_encoder(data.settings).space.key
    store = EmbeddingStore(data.store, key)
    env = {
        **os.environ,
        "EMINGEST_PIPELINE__TILE_BYTES": str(80 << 10),  # one patch row per block: 24 blocks
        "EMINGEST_PIPELINE__WORKERS": "1",
        "EMINGEST_EMBED__SLICE_EVERY": "2",
        "EMINGEST_LOGGING__LOG_DIR": str(tmp_path / "logs"),
    }
    cmd = [sys.executable, "-m", "emingest.cli", "embed", data.record_id]
    cmd += ["--data-root", str(data.settings.storage.data_root)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _lines(store.journal_path) < 4 and proc.poll() is None:  # the plan + 3 blocks
        assert time.monotonic() < deadline, "embed never wrote a block"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "embed finished before it could be killed"
    attrs = store.attrs()
    assert attrs is not None and attrs["complete"] is False
    done = _lines(store.journal_path) - 1
    assert 3 <= done < 24
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming, {done} blocks already embedded" in rerun.stderr
    assert "embedded, 240 patches" in rerun.stdout
    assert store.is_complete() and not store.journal_path.exists()
    resumed = list(store.iter_chunks())
    reference = list(EmbeddingStore(textured.store, key).iter_chunks())
    for (c1, v1), (c2, v2) in zip(resumed, reference, strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-5)
    # and the resumed volume is indexed: its own patch is its nearest neighbour
    hits = search_like(data.settings, data.record_id, (2, 96, 160), k=1, source="local")
    assert hits[0].distance == pytest.approx(0.0, abs=1e-4)


def test_search_json_and_table(textured: Textured) -> None:
    root = str(textured.settings.storage.data_root)
    env = {"EMINGEST_EMBED__SLICE_EVERY": "2"}
    runner = CliRunner()
    args = ["search", "--like", textured.record_id, "--at", "2", "96", "160", "-k", "3"]
    res = runner.invoke(app, [*args, "--json", "--data-root", root], env=env)
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert len(hits) == 3
    assert set(hits[0]) >= {"record_id", "center_zyx", "center_nm", "level", "distance"}
    assert hits[0]["record_id"] == textured.record_id and hits[0]["center_zyx"] == [2, 96, 160]
    table = runner.invoke(app, [*args, "--data-root", root, "--where", "z=4"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["DISTANCE", "RECORD_ID", "CENTER_ZYX"]
    assert len(lines) == 4 and all(line.split()[2] == "4" for line in lines[1:])
    image = textured.tif.parent / "example.tif"
    import tifffile

    tifffile.imwrite(image, textured.volume[1, :64, :64])
    by_image = runner.invoke(
        app, ["search", "--like-image", str(image), "-k", "2", "--json", "--data-root", root]
    )
    assert by_image.exit_code == 0, by_image.output
    assert len(json.loads(by_image.output)) == 2
    bad = runner.invoke(app, ["search", "--like", textured.record_id, "--data-root", root])
    assert bad.exit_code == 2 and "--at" in bad.output
    bad_where = runner.invoke(app, [*args, "--where", "colour=red", "--data-root", root], env=env)
    assert bad_where.exit_code == 2 and "unknown filter field" in bad_where.output


def test_embed_needs_ids_and_names_unknown_models(textured: Textured) -> None:
    root = str(textured.settings.storage.data_root)
    runner = CliRunner()
    assert runner.invoke(app, ["embed", "--data-root", root]).exit_code == 2
    res = runner.invoke(app, ["embed", "--all", "--model", "nope", "--data-root", root])
    assert res.exit_code == 2 and "known embedders: scattering, torch" in res.output


def test_vectors_sync_command_rebuilds(isolated: Settings, textured: Textured) -> None:
    runner = CliRunner()
    toml = Path(str(isolated.catalog.db_path) + ".toml")
    toml.write_text(
        f'[catalog]\ndb_path = "{isolated.catalog.db_path}"\n'
        f'[embed]\nindex_dir = "{isolated.embed.index_dir}"\nslice_every = 2\n'
    )
    root = str(isolated.storage.data_root)
    res = runner.invoke(app, ["vectors", "sync", "--config", str(toml), "--data-root", root])
    assert res.exit_code == 0, res.output
    assert "240 vectors indexed" in res.output
    assert len(search_like(isolated, textured.record_id, (2, 96, 160), k=5)) == 5


def test_pgvector_backend_gives_the_hits_of_the_embedded_index(
    isolated: Settings, textured: Textured, pg_dsn: str
) -> None:
    sync_index(isolated)
    pg = isolated.model_copy(deep=True)
    pg.embed.backend = "pgvector"
    pg.embed.postgres_dsn = pg_dsn
    assert list(sync_index(pg).values()) == [240]
    for p in query_points(textured)[:6]:
        a = search_like(isolated, textured.record_id, p, k=10)
        b = search_like(pg, textured.record_id, p, k=10)
        assert [(h.record_id, h.center_zyx) for h in a] == [(h.record_id, h.center_zyx) for h in b]
        np.testing.assert_allclose([h.distance for h in a], [h.distance for h in b], atol=1e-5)
    few = search_like(pg, textured.record_id, (2, 96, 160), k=10, where=["z=6", "y<100"])
    assert len(few) == 10 and all(h.center_zyx[0] == 6 and h.center_zyx[1] < 100 for h in few)


def test_demo_embeds_the_volumes_and_prints_one_search(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--root", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "embed flyem/" in out and ": embedded, " in out
    assert "Vectors: " in out and "emingest search --like " in out
    table = out[out.index("emingest search --like ") :].splitlines()
    assert table[1].split()[:2] == ["DISTANCE", "RECORD_ID"]
    hits = [line for line in table[2:] if line.strip()]
    assert len(hits) >= 3
    assert float(hits[0].split()[0]) == pytest.approx(0.0, abs=1e-3)  # the example itself
