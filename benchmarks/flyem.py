"""Benchmark: FlyEM hemibrain DVID ``/raw`` (loopback replica) copied into OME-Zarr.

    .venv/bin/python benchmarks/flyem.py --runs 3
    .venv/bin/python benchmarks/flyem.py --box 0:128,0:256,0:256 --runs 1   # quicker

One replica (``FlyEMReplica(shape=..., precomputed=False)``: voxels made per request), in one
run, medians of N runs, MB/s of uncompressed level-0 voxels of the box:
  (a) raw GET   -> the box as block-aligned /raw/0_1_2 sub-boxes of at most max_payload_bytes,
                   requests, 4 threads, bodies discarded
  (b) emingest  -> Pipeline copy of the same box into OME-Zarr (zstd 3, 128^3 chunks, pyramid),
                   sha256 + statistics, records
The replica synthesises voxels on this machine's own cores, so figures rank clients only.
The pipeline reads each voxel from the source once: sha256 and statistics come from the level 0
it has just written (``digest_from_store``), not from a second pass over the network.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

MB = 1e6


def raw_get(fe: Any, box: Any, max_payload: int) -> int:
    from emingest.sources.flyem import aligned_pieces

    local = __import__("threading").local()
    base = f"{fe.dvid_url}/api/node/{fe.uuid}/{fe.instance}/raw/0_1_2"

    def fetch(piece: Any) -> int:
        session = getattr(local, "s", None)
        if session is None:
            session = local.s = requests.Session()
            session.trust_env = False
        (z0, z1), (y0, y1), (x0, x1) = piece
        answer = session.get(f"{base}/{x1 - x0}_{y1 - y0}_{z1 - z0}/{x0}_{y0}_{z0}", timeout=60)
        answer.raise_for_status()
        return len(answer.content)

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(fetch, aligned_pieces(box, max_payload)))


def pipeline_copy(fe: Any, box_text: str, root: Path, max_payload: int) -> float:
    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources.flyem import FlyEMSource

    settings = load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root)},
            "logging": {"log_dir": str(root / "logs")},
            "sources": {
                "flyem": {
                    "dvid_url": fe.dvid_url,
                    "max_payload_bytes": max_payload,
                    "transport": {"trust_env": False},
                }
            },
        },
    )
    source = FlyEMSource(settings)
    (ref,) = source.discover([], box=box_text)
    t0 = time.perf_counter()
    with Pipeline(settings) as pipe:
        (result,) = pipe.run([VolumeJob(source, ref)], force=True)
    seconds = time.perf_counter() - t0
    if result.status != "complete":
        raise SystemExit(f"pipeline failed: {result.status}")
    return seconds


def main() -> None:
    from emingest.sources.flyem import parse_box
    from emingest.testing.flyem import FlyEMReplica

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--box", default="0:256,0:512,0:512", help="z0:z1,y0:y1,x0:x1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-payload", type=int, default=8 << 20)
    args = parser.parse_args()
    box = parse_box(args.box)
    assert box is not None
    shape = tuple(b for _, b in box)
    nbytes = 1
    for a, b in box:
        nbytes *= b - a
    root = Path(tempfile.mkdtemp(prefix="flyem-bench-"))
    try:
        with FlyEMReplica(shape=shape, precomputed=False, payload_limit=1 << 30) as fe:  # type: ignore[arg-type]
            rows: dict[str, list[float]] = {"raw GET": [], "emingest": []}
            for _ in range(args.runs):
                t0 = time.perf_counter()
                got = raw_get(fe, box, args.max_payload)
                rows["raw GET"].append(got / MB / (time.perf_counter() - t0))
                seconds = pipeline_copy(fe, args.box, root, args.max_payload)
                rows["emingest"].append(nbytes / MB / seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"box {args.box} ({nbytes / MB:.1f} MB uint8), {args.runs} run(s), medians:")
    base = statistics.median(rows["raw GET"])
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"  {name:10s} {med:8.1f} MB/s   {med / base:5.2f}x raw GET")


if __name__ == "__main__":
    main()
