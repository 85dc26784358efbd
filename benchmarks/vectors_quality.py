"""Benchmark: retrieval quality and embedding throughput of the embedders (issue 13).

    .venv/bin/python benchmarks/vectors_quality.py                 # about 2 minutes here
    .venv/bin/python benchmarks/vectors_quality.py --per-class 40 --no-pipeline

Quality: search by example among patches of known class, leave-one-out, cosine distance, exact
k-NN: precision@10 and mean average precision, for each embedder and for the raw-pixel + PCA
baseline (64 components fitted on the patches themselves, which favours the baseline). Two
sets of 64 x 64 patches:
  textures  emingest.testing.synthetic.textured_classes: 5 textures (cytoplasm, lamellae,
            vesicles, granules, cells), each patch wholly inside one region;
  organelles SyntheticEM (cells, membranes, organelles): a patch's class is organelle when
            >= 35 % of it is organelle, membrane when >= 12 % is membrane, else cytoplasm
            (like EPFL's mitochondria ground truth: does a patch show one?).
Throughput: the embedder alone on one thread (patches/s, MB/s of 64 x 64 uint8 voxels per
core), and `embed_volume` end to end (read from the OME-Zarr, normalise, embed, write, index)
with one worker, plus the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

P = 64


def scores(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(precision@10, mAP) of leave-one-out cosine search."""
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    sims = f @ f.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]
    rel = labels[order] == labels[:, None]
    p10 = float(rel[:, :10].mean())
    hits = np.cumsum(rel, axis=1)
    ap = (rel * hits / np.arange(1, rel.shape[1] + 1)).sum(1) / np.maximum(rel.sum(1), 1)
    return p10, float(ap.mean())


def texture_patches(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from emingest.testing.synthetic import textured_classes

    vol, cls = textured_classes((4, 768, 1280), seed=seed)
    norm = (vol.astype(np.float32) - vol.mean()) / vol.std()
    rng = np.random.default_rng(seed)
    out: dict[int, list[np.ndarray]] = {c: [] for c in range(5)}
    while min(len(v) for v in out.values()) < per_class:
        z, y, x = rng.integers(4), rng.integers(768 - P), rng.integers(1280 - P)
        c = cls[z, y : y + P, x : x + P]
        k = int(c[0, 0])
        if (c == k).all() and len(out[k]) < per_class:
            out[k].append(norm[z, y : y + P, x : x + P])
    return _stack(out)


def organelle_patches(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from emingest.testing.synthetic import CLASS_MEMBRANE, CLASS_ORGANELLE, synthetic_em

    vol, cls = synthetic_em((24, 768, 768), "uint8", seed=seed)
    norm = (vol.astype(np.float32) - vol.mean()) / vol.std()
    rng = np.random.default_rng(seed)
    out: dict[int, list[np.ndarray]] = {c: [] for c in range(3)}
    for _ in range(200000):
        if min(len(v) for v in out.values()) >= per_class:
            break
        z, y, x = rng.integers(24), rng.integers(768 - P), rng.integers(768 - P)
        c = cls[z, y : y + P, x : x + P]
        org, mem = (c == CLASS_ORGANELLE).mean(), (c == CLASS_MEMBRANE).mean()
        if org >= 0.35:
            k = 2
        elif org == 0 and mem >= 0.12:
            k = 1
        elif org == 0 and mem < 0.02:
            k = 0
        else:
            continue  # a mixed patch: no clear class
        if len(out[k]) < per_class:
            out[k].append(norm[z, y : y + P, x : x + P])
    return _stack(out)


def _stack(out: dict[int, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    patches = np.stack([p for k in sorted(out) for p in out[k]])[:, None]
    labels = np.array([k for k in sorted(out) for _ in out[k]])
    return patches.astype(np.float32), labels


def embedders(torch_too: bool) -> dict[str, Any]:
    from emingest.vectors import create_embedder
    from emingest.vectors.encoder import PatchEncoder

    found: dict[str, Any] = {
        "scattering J3 L8 (default)": PatchEncoder(
            create_embedder("scattering"), mode="2d", patch_nm=512
        ),
        "scattering J3 L8 on 32 px": PatchEncoder(
            create_embedder("scattering", {"size": 32}), mode="2d", patch_nm=512
        ),
    }
    if torch_too:
        try:
            import torch

            from emingest.vectors.torch_model import build_patchcnn, save_patchcnn

            torch.manual_seed(0)
            cfg = {"channels": [16, 32, 64], "dim": 64, "size": 64}
            path = Path(tempfile.mkdtemp()) / "random.pt"
            save_patchcnn(build_patchcnn(cfg), cfg, path)
            found["untrained PatchCNN (torch)"] = PatchEncoder(
                create_embedder("torch", {"weights": str(path)}), mode="2d", patch_nm=512
            )
        except ImportError:
            pass
    return found


def pca_baseline(patches: np.ndarray) -> np.ndarray:
    x = patches.reshape(len(patches), -1)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:64].T


def quality(per_class: int, torch_too: bool) -> None:
    print(f"\n## Retrieval quality (leave-one-out, cosine, exact 10-NN; {per_class} patches/class)")
    print(f"{'set':<11} {'embedder':<28} {'dim':>4} {'P@10':>6} {'mAP':>6} {'mAP/base':>8}")
    for set_name, make in (("textures", texture_patches), ("organelles", organelle_patches)):
        patches, labels = make(per_class, seed=11)
        base = scores(pca_baseline(patches), labels)
        row = f"{set_name:<11} {'raw pixels + PCA64 (base)':<28} {64:>4}"
        print(f"{row} {base[0]:>6.3f} {base[1]:>6.3f} {1.0:>8.2f}")
        for name, enc in embedders(torch_too).items():
            f = np.concatenate(
                [enc.encode(patches[i : i + 64]) for i in range(0, len(patches), 64)]
            )
            p10, m = scores(f, labels)
            row = f"{set_name:<11} {name:<28} {f.shape[1]:>4}"
            print(f"{row} {p10:>6.3f} {m:>6.3f} {m / base[1]:>8.2f}")


def throughput(n: int) -> None:
    print(f"\n## Embedder throughput, one thread ({n} patches of {P}x{P})")
    rng = np.random.default_rng(0)
    patches = rng.standard_normal((n, 1, P, P)).astype(np.float32)
    for name, enc in embedders(True).items():
        enc.encode(patches[:4])  # builds the filters: not timed
        t0 = time.perf_counter()
        for i in range(0, n, 64):
            enc.encode(patches[i : i + 64])
        dt = time.perf_counter() - t0
        mbs = n * P * P / dt / 1e6
        print(f"{name:<28} {n / dt:8.1f} patches/s  {mbs:6.2f} MB/s  {dt / n * 1e3:6.2f} ms/patch")


_CHILD = """
import sys, time
from emingest.config import load_settings
from emingest.vectors import embed_records
settings = load_settings(environ={}, overrides={
    "storage": {"data_root": sys.argv[1]}, "pipeline": {"workers": 1},
    "logging": {"log_dir": sys.argv[1] + "/logs"}, "embed": {"stride_nm": float(sys.argv[2])}})
t0 = time.perf_counter()
[res] = embed_records(settings)
dt = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec from the (big) parent
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(res.patches, dt, int(hwm) / 1024)
"""


def pipeline(shapes: list[tuple[int, int, int]], stride_nm: float) -> None:
    """Ingest, then `embed_records` in a fresh process per volume (its own peak RSS)."""
    import subprocess

    import tifffile

    from emingest.config import load_settings
    from emingest.pipeline import Pipeline, VolumeJob
    from emingest.sources import create_source
    from emingest.testing.synthetic import textured_classes

    print(f"\n## embed end to end, 1 worker, fresh process: 512 nm patches every {stride_nm:g} nm")
    for shape in shapes:
        root = Path(tempfile.mkdtemp(prefix="vectors-bench-"))
        vol, _ = textured_classes(shape, seed=1)
        tif = root / "v.tif"
        tifffile.imwrite(tif, vol)
        settings = load_settings(
            environ={},
            overrides={
                "storage": {"data_root": str(root / "data")},
                "logging": {"log_dir": str(root / "logs")},
            },
        )
        src = create_source("local", settings)
        with Pipeline(settings) as pipe:
            pipe.run([VolumeJob(src, r, (8.0, 8.0, 8.0)) for r in src.discover([str(tif)])])
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root / "data"), str(stride_nm)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        n, dt, rss = int(out[0]), float(out[1]), float(out[2])
        print(
            f"volume {shape} uint8 ({vol.nbytes / 2**20:.0f} MiB): {n} patches in {dt:.1f} s, "
            f"{n / dt:.1f} patches/s, {n * P * P / dt / 1e6:.2f} MB/s of patch voxels; "
            f"peak RSS {rss:.0f} MiB"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--only-pipeline", action="store_true")
    ap.add_argument("--throughput-patches", type=int, default=256)
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    print(
        f"# vectors_quality on {platform.node()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    if not args.only_pipeline:
        quality(args.per_class, not args.no_torch)
        throughput(args.throughput_patches)
    if not args.no_pipeline:
        pipeline([(8, 512, 1024), (64, 2048, 2048)], stride_nm=2048.0)


if __name__ == "__main__":
    main()
