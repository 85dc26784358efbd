"""The catalog backends side by side: SQLite file vs PostgreSQL (throwaway pgserver, Unix socket).

    .venv/bin/python benchmarks/catalog_backends.py --records 5000

Prints, per backend: upserts per second on one open catalog, the pipeline's pattern (open the
catalog, upsert one record, close: what ``index_record`` does for each stub and complete
record), a sync of every sidecar, and a filtered query. Figures for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from emingest.catalog import CatalogFilters, open_catalog, read_sidecars
from emingest.testing.catalog import write_sample_record
from emingest.testing.postgres import postgres_server


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(location: str | Path, root: Path, reopen: int) -> dict[str, float]:
    rows, _ = read_sidecars(root)
    records = [(r, Path(r.record_path)) for r in rows]
    from emingest.records import read_record

    loaded = [(read_record(p), p) for _, p in records]
    out: dict[str, float] = {}
    with open_catalog(location) as cat:
        out["upsert/s (one connection)"] = len(loaded) / timed(
            lambda: [cat.upsert(rec, p) for rec, p in loaded]
        )

    def per_record() -> None:
        for rec, p in loaded[:reopen]:
            with open_catalog(location) as c:
                c.upsert(rec, p)

    out["open+upsert+close/s (index_record)"] = reopen / timed(per_record)
    with open_catalog(location) as cat:
        out["sync s"] = timed(lambda: cat.sync(root))
        f = CatalogFilters(source="local", status="complete", voxel_max_nm=10, text="cortex")
        out["filtered query ms"] = 1000 * timed(lambda: cat.query(f))
        out["full query ms"] = 1000 * timed(cat.query)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--reopen", type=int, default=300, help="records for the reopen pattern")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for i in range(args.records):
            write_sample_record(
                root, "local", f"v{i // 100:04d}", f"n{i % 100:03d}", description=f"cortex {i}"
            )
        results = {"SQLite": bench(Path(tmp) / "c.sqlite", root, args.reopen)}
        with postgres_server() as server:
            results["PostgreSQL"] = bench(server.create_database(), root, args.reopen)
    keys = list(results["SQLite"])
    print(f"{args.records} records\n")
    print("| backend | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:,.1f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
