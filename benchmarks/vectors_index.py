"""Benchmark: the vector index at scale (issue 13): HNSW recall, latency, build time, memory.

    .venv/bin/python benchmarks/vectors_index.py --sizes 100000
    .venv/bin/python benchmarks/vectors_index.py --sizes 1000000 --m 16 --ef-construction 40
    .venv/bin/python benchmarks/vectors_index.py --sizes 100000 --backends faiss,pgvector

Synthetic clustered vectors (128-d, 1000 Gaussian clusters, like patch embeddings of many
volumes) go through the product's own `FaissIndex` (faiss HNSW, M 32, efConstruction 80,
efSearch 64; metadata in SQLite), and with --backends pgvector through `PgVectorIndex` on a
PostgreSQL the script starts with pgserver. 200 queries drawn near the data: recall@10 against exact
search (faiss IndexFlatIP), p50/p95 latency of `search()` (metadata join included), a
filtered search matching 1 % of the rows (hits returned, must be 10), build time and the
growth of the process's peak RSS and the size of the index file.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

DIM = 128
Q = 200


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    q = centres[rng.integers(0, 1000, Q)] + 0.6 * rng.standard_normal((Q, DIM), dtype=np.float32)
    return x, q


def volumes(x: np.ndarray, per_volume: int = 50000) -> list[Any]:
    """Cut the vectors into 'volumes'; 1 % of the rows belong to source 'rare'."""
    from emingest.vectors.index import VolumeVectors

    out = []
    n = len(x)
    rare = max(1, n // 100)
    bounds = [(0, rare, "rare")] + [
        (s, min(n, s + per_volume), "bulk") for s in range(rare, n, per_volume)
    ]
    for i, (a, b, source) in enumerate(bounds):

        def chunks(a: int = a, b: int = b) -> Any:
            for s in range(a, b, 50000):
                e = min(b, s + 50000)
                c = np.stack([np.zeros(e - s), np.arange(s, e), np.zeros(e - s)], 1).astype(
                    np.int64
                )
                yield c, x[s:e], None

        out.append(VolumeVectors(f"{source}/{i}/v", source, 0, f"fp{i}", chunks))
    return out


def exact(x: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(xn if rows is None else xn[rows])
    _, ids = flat.search(qn, k)
    return ids if rows is None else rows[ids]


def measure(name: str, index: Any, x: np.ndarray, q: np.ndarray, ef_list: list[int]) -> None:
    from emingest.vectors.embedders import EmbedderId
    from emingest.vectors.index import make_filters

    space = EmbedderId("bench", "1", {"n": len(x)}, DIM)
    r0 = rss_mib()
    t0 = time.perf_counter()
    index.rebuild(space, volumes(x))
    build = time.perf_counter() - t0
    grown = rss_mib() - r0
    truth = exact(x, q, 10)
    for ef in ef_list:
        index.ef_search = ef
        lat, rec = [], []
        for i in range(Q):
            t = time.perf_counter()
            hits = index.search(space.key, q[i], 10)
            lat.append(time.perf_counter() - t)
            got = {h.center_zyx[1] for h in hits}
            rec.append(len(got & set(truth[i].tolist())) / 10)
        p50, p95 = np.percentile(np.array(lat) * 1e3, [50, 95])
        print(
            f"{name:<9} n={len(x):>8,}  efSearch {ef:>4}  recall@10 {np.mean(rec):.3f}  "
            f"p50 {p50:6.2f} ms  p95 {p95:6.2f} ms"
        )
    index.ef_search = ef_list[0]
    rare_rows = np.arange(max(1, len(x) // 100))
    truth_rare = exact(x, q[:50], 10, rare_rows)
    flat_lat, flat_n, flat_rec = [], [], []
    for i in range(50):
        t = time.perf_counter()
        hits = index.search(space.key, q[i], 10, make_filters(source="rare"))
        flat_lat.append(time.perf_counter() - t)
        flat_n.append(len(hits))
        flat_rec.append(len({h.center_zyx[1] for h in hits} & set(truth_rare[i].tolist())) / 10)
    f50, f95 = np.percentile(np.array(flat_lat) * 1e3, [50, 95])
    size = ""
    file = getattr(index, "index_dir", None)
    if file is not None:
        size = f"{(Path(file) / f'{space.key}.faiss').stat().st_size / 2**20:.0f} MiB file, "
    print(
        f"{name:<9} n={len(x):>8,}  build {build:6.1f} s  | 1 % filter (efSearch {ef_list[0]}): "
        f"{min(flat_n)}-{max(flat_n)} of 10 hits, recall {np.mean(flat_rec):.3f}, p50 {f50:.1f} "
        f"ms p95 {f95:.1f} ms  | {size}peak RSS +{grown:.0f} MiB (after the data's own)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument(
        "--backends",
        default="faiss",
        help="faiss,pgvector (pgvector: a local PostgreSQL started with pgserver)",
    )
    ap.add_argument("--m", type=int, default=32, help="HNSW M (the product's default: 32)")
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", default="64,128,256", help="efSearch values to measure")
    ap.add_argument("--threads", type=int, default=0, help="faiss OpenMP threads (0: all)")
    args = ap.parse_args()
    print(
        f"# vectors_index on {platform.node()}: {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, faiss {faiss.__version__}, {DIM}-d, {Q} queries, k=10"
    )
    from emingest.vectors.faiss_index import FaissIndex

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    hnsw = {"m": args.m, "ef_construction": args.ef_construction}
    efs = [int(e) for e in args.ef_search.split(",")]
    print(f"# HNSW M {args.m}, efConstruction {args.ef_construction}")

    for n in [int(s) for s in args.sizes.split(",")]:
        x, q = data(n)
        root = Path(tempfile.mkdtemp(prefix="vindex-"))
        if "faiss" in args.backends:
            with FaissIndex(root / "catalog.sqlite", root / "vectors", **hnsw) as index:
                measure("faiss", index, x, q, efs)
        if "pgvector" in args.backends:
            import pgserver

            from emingest.vectors.pgvector_index import PgVectorIndex

            server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="vindex-pg-")))
            try:
                pg = PgVectorIndex(server.get_uri(), **hnsw)
                measure("pgvector", pg, x, q, efs)
                pg.close()
            finally:
                server.cleanup()
        del x, q


if __name__ == "__main__":
    main()
