"""EMPIAR's downloads land in the cache every source uses: ``<data_root>/.cache/empiar``."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyftpdlib")
pytest.importorskip("rsciio.digitalmicrograph")

from emingest.config import load_settings
from emingest.sources.empiar import EmpiarSource
from emingest.testing.empiar import DM3_ENTRY, EmpiarReplica


def test_downloads_go_under_data_root_cache_empiar(tmp_path: Path) -> None:
    with EmpiarReplica(tmp_path / "replica", n_slices=3) as empiar:
        data = tmp_path / "data"
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(data)},
                "sources": {
                    "empiar": {
                        "api_url": empiar.api_url,
                        "files_url": empiar.files_http_url,
                        "fallback_files_url": empiar.files_ftp_url,
                    }
                },
            },
        )
        source = EmpiarSource(settings)
        try:
            ref = source.discover([DM3_ENTRY])[0]
            info = source.describe(ref)
        finally:
            source.close()
    first = Path(info.raw_paths[0])
    cache = data / ".cache" / "empiar" / f"EMPIAR-{DM3_ENTRY}"
    assert first.is_file() and cache in first.parents
    assert not (data / "empiar").exists()
