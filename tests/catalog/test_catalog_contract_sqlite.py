"""The SQLite catalog passes the catalog contract (emingest.testing.catalog.CatalogTests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emingest.testing.catalog import CatalogTests


class TestSQLiteCatalogContract(CatalogTests):
    @pytest.fixture
    def catalog_location(self, tmp_path: Path) -> Path:
        return tmp_path / "cat.sqlite"

    def wipe(self, location: str | Path) -> None:
        for path in Path(location).parent.glob(f"{Path(location).name}*"):
            path.unlink()
