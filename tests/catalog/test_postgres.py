"""The PostgreSQL catalog: the catalog contract against a real server, settings, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from emingest.catalog import CatalogFilters, index_record, open_catalog
from emingest.catalog.postgres import PostgresCatalog, redact_url
from emingest.cli import app
from emingest.config import load_settings
from emingest.errors import CatalogError, ConfigError
from emingest.testing.catalog import (
    SAMPLE_IDS,
    CatalogTests,
    write_sample_record,
    write_sample_tree,
)


class TestPostgresCatalogContract(CatalogTests):
    @pytest.fixture
    def catalog_location(self, postgres_url: str) -> str:
        return postgres_url

    def wipe(self, location: str | Path) -> None:
        with psycopg.connect(str(location), autocommit=True) as conn:
            conn.execute("DROP TABLE emingest_records")
            conn.execute("DROP TABLE emingest_catalog_meta")


def test_same_answers_as_sqlite(postgres_url: str, tmp_path: Path) -> None:
    root = write_sample_tree(tmp_path / "data")
    filters = [
        CatalogFilters(),
        CatalogFilters(source="epfl"),
        CatalogFilters(status="complete", voxel_max_nm=10),
        CatalogFilters(min_shape=(5, 100, 100), text="cortex"),
    ]
    with (
        open_catalog(tmp_path / "c.sqlite", data_root=root) as lite,
        open_catalog(postgres_url, data_root=root) as pg,
    ):
        assert isinstance(pg, PostgresCatalog)
        for f in filters:
            assert pg.query(f) == lite.query(f)
        assert pg.get("idr/9846137/img") == lite.get("idr/9846137/img")


def test_settings_url_selects_postgres(postgres_url: str, tmp_path: Path) -> None:
    root = write_sample_tree(tmp_path / "data")
    settings = load_settings(
        environ={"EMINGEST_CATALOG__URL": postgres_url, "EMINGEST_STORAGE__DATA_ROOT": str(root)}
    )
    with open_catalog(settings) as cat:
        assert isinstance(cat, PostgresCatalog)
        assert [r.id for r in cat.query()] == SAMPLE_IDS  # filled from the data root on open
    assert not (root / "catalog.sqlite").exists()


def test_catalog_commands_use_the_url(postgres_url: str, tmp_path: Path) -> None:
    root = write_sample_tree(tmp_path / "data")
    env = {"EMINGEST_CATALOG__URL": postgres_url}
    runner = CliRunner()
    done = runner.invoke(app, ["catalog", "sync", "--data-root", str(root)], env=env)
    assert done.exit_code == 0, done.output
    assert "indexed 6 records" in done.output
    listed = runner.invoke(
        app, ["catalog", "list", "--data-root", str(root), "--source", "empiar"], env=env
    )
    assert listed.exit_code == 0, listed.output
    assert "empiar/11759/stack" in listed.output and "epfl" not in listed.output
    assert not (root / "catalog.sqlite").exists()


def test_url_must_be_postgres() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        load_settings(overrides={"catalog": {"url": "mysql://x/y"}})


def test_unreachable_server_is_a_catalog_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://me:s3cret@/nodb?host={tmp_path}&connect_timeout=2"
    with pytest.raises(CatalogError, match="cannot connect") as info:
        PostgresCatalog(url)
    assert "s3cret" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_missing_extra_names_it() -> None:
    """Without psycopg installed, one line naming the extra (psycopg is hidden, not removed)."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from emingest.catalog import open_catalog\n"
        "try:\n"
        "    open_catalog('postgresql://u@localhost/db')\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ConfigError")
    assert "pip install 'emingest[postgres]'" in out.stdout


def test_index_record_writes_to_postgres(postgres_url: str, tmp_path: Path) -> None:
    """The pipeline's one call into the catalog reaches the server that catalog.url names."""
    root = tmp_path / "data"
    settings = load_settings(
        overrides={"catalog": {"url": postgres_url}, "storage": {"data_root": str(root)}}
    )
    record = write_sample_record(root, "local", "v-1", "v")
    assert index_record(settings, root / "local" / "v-1" / "v.json", record) is True
    with open_catalog(postgres_url) as cat:
        assert [r.id for r in cat.query()] == ["local/v-1/v"]
    shown = CliRunner().invoke(
        app, ["catalog", "show", "local/v-1/v"], env={"EMINGEST_CATALOG__URL": postgres_url}
    )
    assert shown.exit_code == 0, shown.output
    assert '"source_id": "v-1"' in shown.output


def test_test_databases_have_pgvector(postgres_url: str) -> None:
    """The fixture serves the vector index too: the extension is there in every database."""
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = row.fetchone()
        assert version is not None and version[0].count(".") == 2
        distance = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector").fetchone()
        assert distance == (2.0,)


def test_shares_a_database_without_touching_other_tables(postgres_url: str, tmp_path: Path) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE records (note TEXT)")
        conn.execute("INSERT INTO records VALUES ('not ours')")
    with open_catalog(postgres_url, data_root=write_sample_tree(tmp_path / "data")) as cat:
        assert len(cat.query()) == 6
        cat.sync(tmp_path / "data")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT note FROM records").fetchall() == [("not ours",)]


def test_db_option_takes_a_url(postgres_url: str, tmp_path: Path) -> None:
    root = write_sample_tree(tmp_path / "data")
    runner = CliRunner()
    done = runner.invoke(app, ["catalog", "sync", "--data-root", str(root), "--db", postgres_url])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["catalog", "list", "--json", "--db", postgres_url])
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == SAMPLE_IDS
    assert not list(tmp_path.rglob("*.sqlite"))
