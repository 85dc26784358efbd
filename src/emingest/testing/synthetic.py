"""Deterministic EM-like volumes, any shape, produced region by region in bounded memory.

A :class:`SyntheticEM` looks like a FIB-SEM/SBEM stack: bright cytoplasm cut into cells by thin
dark membranes (a Voronoi tessellation of jittered seeds), darker ellipsoidal organelles inside
the cells, a slow illumination drift with slice-to-slice flicker, and signal-dependent noise.
Lossless zstd compresses the uint8 data about 1.25x, as it does real EM.

Every voxel is a pure function of ``(seed, z, y, x)``: cell seeds and organelles hang on a
global coarse grid hashed from ``(seed, cell index)``, the noise comes from hashed row offsets
into two fixed tables. So ``read(region)`` equals ``array()[region]`` exactly, and a volume of
any size can be written slab by slab::

    >>> em = SyntheticEM((64, 512, 512), "uint8", seed=1)
    >>> bool((em.read((slice(3, 9), slice(5, 50), slice(0, 7))) == em.array()[3:9, 5:50, :7]).all())
    True

How it stays fast: the volume is cut into 4x4x4 blocks; per block the nearest and second-nearest
cell seeds are found once (in two stages, via 8x8x8 superblocks), which makes the membrane a
*linear* function of position inside the block (the signed distance to the bisector plane of
the two seeds) and the organelle of the block's cell a separable quadratic. The voxels are then
filled by about twenty vectorised float32 passes over 16 strided phases of each tile, all IEEE
add/mul/compare, so the result does not depend on how the volume was cut into regions.
About 100 million voxels a second on one core (100 MB/s of uint8, 200 MB/s of 16-bit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "CLASS_BACKGROUND",
    "CLASS_MEMBRANE",
    "CLASS_ORGANELLE",
    "TEXTURE_CLASSES",
    "SyntheticEM",
    "VolumeLike",
    "synthetic_em",
    "textured_classes",
    "write_tiff_stack",
]

Region = tuple[slice, slice, slice]

CLASS_BACKGROUND = 0
"""Cytoplasm / extracellular background."""
CLASS_MEMBRANE = 1
CLASS_ORGANELLE = 2

_B = 4
"""Block edge in voxels: per-block geometry is found once, then filled voxel by voxel."""
_CELL = 64
"""Spacing of the cell-seed grid (voxels): cells are about this wide."""
_JITTER = 0.7
"""Seed jitter as a fraction of the cell spacing."""

# Grey levels of the clean image, in uint8 units (mapped to 16-bit below).
_CYTO = 168.0
_MEMBRANE_DEPTH = 0.62  # a membrane core is this much darker than the cytoplasm around it
_MEM_EDGE = 2.1  # membrane darkness fades linearly to nothing at this distance (voxels)
_MEM_CLASS = 1.5  # class map: membrane where |distance| < this (where darkness > ~1/2)
_BRIGHT_SPREAD = 0.08  # per-cell brightness: 1 +- this
_ORG_EDGE = 3.0  # organelle edge sharpness (1/q units)
_ORG_PRESENT = 0.9
_ORG_RADIUS = (12.0, 28.0)  # wanted semi-axes; shrunk to clear the walls
_ORG_SHIFT = 2.0  # organelle centre: within this of the cell seed, per axis
_ORG_CLEARANCE = 4.5  # organelles keep this far from the cell walls (voxels)
_NOISE_FLOOR = 3.5
_NOISE_SLOPE = 0.04  # noise: sigma^2 = floor^2 + (slope * clean grey level)^2
_DRIFT = 0.07
_FLICKER = 0.012

# 16-bit renderings: grey (0..255 scale) -> value.
_INT16_SCALE, _INT16_OFFSET = 24.0, -128.0 * 24.0  # about -3000..+3000, as OpenOrganelle int16
_UINT16_SCALE, _UINT16_OFFSET = 24.0, 1000.0  # about 1000..7100

_TILE_ELEMS = 1 << 16
"""Voxels per phase array of a tile (16 phases make a tile); keeps temporaries cache-sized."""
_SLAB_SUPERBLOCKS = 1 << 13
"""Superblocks (8^3 voxels) whose geometry is found in one go (bounds memory, amortises calls)."""

_SUPPORTED = (np.dtype("uint8"), np.dtype("int16"), np.dtype("uint16"))


# -- counter-based hashing -------------------------------------------------------------------

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_GOLD = np.uint32(0x9E3779B1)


def _mix(h: np.ndarray) -> np.ndarray:
    """lowbias32 (Wellons): a bijective uint32 finaliser with good avalanche."""
    h = h ^ (h >> np.uint32(16))
    h *= _M1
    h ^= h >> np.uint32(15)
    h *= _M2
    h ^= h >> np.uint32(16)
    return h


def _hash(seed: int, salt: int, *coords: Any) -> np.ndarray:
    """uint32 hash of (seed, salt, coords...), broadcast over the coordinate arrays."""
    arrays = [np.atleast_1d(np.asarray(c)).astype(np.int64) for c in coords]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else (1,)
    start = np.uint32(((seed * 0x9E3779B1) ^ (salt * 0x85EBCA77)) & 0xFFFFFFFF)
    h = _mix(np.full(shape, start, dtype=np.uint32))
    for a in arrays:
        h = _mix(h + (a & 0xFFFFFFFF).astype(np.uint32) * _GOLD)
    return h


def _uniform(seed: int, salt: int, *coords: Any) -> np.ndarray:
    """Uniform float64 in [0, 1) from the hash."""
    return (_hash(seed, salt, *coords) >> np.uint32(8)).astype(np.float64) * (1.0 / (1 << 24))


def _value_noise_1d(seed: int, salt: int, coord: np.ndarray, spacing: float) -> np.ndarray:
    """Smooth 1D noise in [-1, 1]: hashed lattice values, smoothstep-interpolated (no trig)."""
    t = coord.astype(np.float64) / spacing
    k = np.floor(t)
    f = t - k
    w = f * f * (3.0 - 2.0 * f)
    a = _uniform(seed, salt, k) * 2.0 - 1.0
    b = _uniform(seed, salt, k + 1) * 2.0 - 1.0
    return a + (b - a) * w


def _noise_table(seed: int, salt: int, n: int) -> np.ndarray:
    """A fixed table of ``n`` standard normal float32 values (Box-Muller over hashed uniforms)."""
    i = np.arange(n)
    u1 = (_uniform(seed, salt, i) + 0.5 / (1 << 24)).clip(1e-12, 1.0)
    u2 = _uniform(seed, salt + 1, i)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


# -- geometry --------------------------------------------------------------------------------


def _seed_frac(seed: int, kz: Any, ky: Any, kx: Any) -> list[np.ndarray]:
    """Seed of cell ``(kz, ky, kx)`` as float32 offsets (z, y, x) inside the cell, in voxels."""
    return [
        ((0.5 + _JITTER * (_uniform(seed, 10 + axis, kz, ky, kx) - 0.5)) * _CELL).astype(np.float32)
        for axis in range(3)
    ]


def _seed_pos(seed: int, kz: Any, ky: Any, kx: Any) -> list[np.ndarray]:
    """Seed of cell ``(kz, ky, kx)`` in global voxel coordinates (float64)."""
    frac = _seed_frac(seed, kz, ky, kx)
    return [
        f.astype(np.float64) + np.asarray(k) * _CELL
        for f, k in zip(frac, (kz, ky, kx), strict=True)
    ]


_OFFSETS = [(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_AXIS = ((slice(None), None, None), (None, slice(None), None), (None, None, slice(None)))
_ALPHA = 1.0 / _MEM_EDGE
"""Membrane factor on brightness: clip(|s~|, 1 - depth, 1), s~ = alpha * distance to the wall."""
_SIGN = np.int32(-(1 << 31))


def _bisector_distance(
    p: tuple[Any, ...], a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Signed distance from ``p`` to the bisector plane of seeds a and b (> 0 on a's side)."""
    d2a = sum((pi - ai) ** 2 for pi, ai in zip(p, a, strict=True))
    d2b = sum((pi - bi) ** 2 for pi, bi in zip(p, b, strict=True))
    ab = np.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)))
    return (d2b - d2a) / (2.0 * np.maximum(ab, 1e-9))


def _clearance(seed: int, pz: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Distance from points to the nearest wall of the cell they lie in (a Voronoi facet)."""
    k = [np.floor(c / _CELL).astype(np.int64) for c in (pz, py, px)]
    best = np.full(pz.shape, np.inf)
    nearest = [np.zeros(pz.shape) for _ in range(3)]
    cands = []
    for dz, dy, dx in _OFFSETS:
        s = _seed_pos(seed, k[0] + dz, k[1] + dy, k[2] + dx)
        cands.append(s)
        d2 = (pz - s[0]) ** 2 + (py - s[1]) ** 2 + (px - s[2]) ** 2
        closer = d2 < best
        best = np.where(closer, d2, best)
        for i in range(3):
            nearest[i] = np.where(closer, s[i], nearest[i])
    wall = np.full(pz.shape, np.inf)
    for s in cands:
        same = (s[0] == nearest[0]) & (s[1] == nearest[1]) & (s[2] == nearest[2])
        d = _bisector_distance((pz, py, px), tuple(nearest), tuple(s))
        wall = np.where(same, wall, np.minimum(wall, d))
    return wall


class _Cells:
    """Everything per cell in an index box: seed, brightness, organelle. Pure per-cell values."""

    def __init__(self, seed: int, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> None:
        self.lo = lo
        self.n = tuple(h - lo_ + 1 for lo_, h in zip(lo, hi, strict=True))
        mesh = np.meshgrid(
            *(np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)), indexing="ij"
        )
        k = [m.ravel() for m in mesh]
        self.frac = _seed_frac(seed, *k)
        self.pos = _seed_pos(seed, *k)
        self.bright = (1.0 + _BRIGHT_SPREAD * (2.0 * _uniform(seed, 13, *k) - 1.0)) * _CYTO
        # At most one organelle per cell: an ellipsoid near the seed, clear of the walls.
        radius = [
            _ORG_RADIUS[0] + (_ORG_RADIUS[1] - _ORG_RADIUS[0]) * _uniform(seed, 20 + i, *k)
            for i in range(3)
        ]
        ctr = [
            self.pos[i] + _ORG_SHIFT * (2.0 * _uniform(seed, 23 + i, *k) - 1.0) for i in range(3)
        ]
        longest = np.maximum(np.maximum(radius[0], radius[1]), radius[2])
        shortest = np.minimum(np.minimum(radius[0], radius[1]), radius[2])
        scale = np.minimum(1.0, (_clearance(seed, *ctr) - _ORG_CLEARANCE) / longest)
        present = (_uniform(seed, 26, *k) < _ORG_PRESENT) & (scale * shortest >= 3.0)
        dark = 0.30 + 0.18 * _uniform(seed, 27, *k)
        # The organelle's factor on brightness is clip(q~, 1 - dark, 1), with
        # q~ = dark*edge*q + 1 - dark*edge and q = sum((p - ctr) / r)^2 (q < 1 inside).
        self.org_ctr = ctr
        self.org_g = [np.where(present, dark * _ORG_EDGE / (scale * r) ** 2, 0.0) for r in radius]
        self.org_q0 = np.where(present, 1.0 - dark * _ORG_EDGE, 2.0)
        self.org_lo = np.where(present, 1.0 - dark, 1.0)


_K = 5
"""Candidate seeds a superblock keeps for its blocks (the true two nearest of a block are
outside the superblock's five nearest for about 1 block in 7000; the result is still a pure
function of position)."""
_KEY_MAX = np.int32(np.iinfo(np.int32).max)


def _keyed(d: np.ndarray, j: int) -> np.ndarray:
    """Non-negative float32 ``d`` as int32 keys carrying ``j`` in the 5 low mantissa bits.

    Non-negative floats order as their bit patterns, so min/max of keys track the distance
    and the identity of the nearest candidates together.
    """
    key = d.view(np.int32)
    key &= np.int32(~31)
    key |= np.int32(j)
    return key


def _insert(best: list[np.ndarray], key: np.ndarray) -> None:
    """Insert ``key`` into the sorted lists ``best`` (elementwise), dropping the largest."""
    for k in best[:-1]:
        far = np.maximum(k, key)
        np.minimum(k, key, out=k)
        key = far
    np.minimum(best[-1], key, out=best[-1])


class _Blocks:
    """Per-block geometry of a tile, in block-local coordinates l (0..3 per axis).

    Membrane: s~(l) = s0 + l.u, the signed distance to the bisector plane of the block's two
    nearest seeds, scaled by the membrane ramp. Organelle: q~(l) = q0 + sum g_i (l_i - o_i)^2.
    A tile is whole superblocks (2 x 2 x 2 blocks): each superblock finds its ``_K`` nearest
    of the 27 seeds around its cell, then its eight blocks pick their two nearest among those.
    """

    def __init__(self, cells: _Cells, sbz: np.ndarray, sby: np.ndarray, sbx: np.ndarray) -> None:
        f32 = np.float32
        sb = (sbz, sby, sbx)
        kc = [(b * 2 * _B) // _CELL for b in sb]
        # Superblock centre relative to its cell's corner: small exact numbers, the same
        # whatever the tiling, so float32 distances are reproducible.
        crel = [
            (b * 2 * _B - k * _CELL).astype(f32) + f32(_B - 0.5)
            for b, k in zip(sb, kc, strict=True)
        ]
        nky, nkx = cells.n[1], cells.n[2]
        # Indices are intp: np.take converts any other index type, slowly.
        rel = [(k - lo).astype(np.intp) for k, lo in zip(kc, cells.lo, strict=True)]
        flat0 = (rel[0][:, None, None] * nky + rel[1][None, :, None]) * nkx + rel[2][None, None, :]
        offsets = np.array(_OFFSETS, np.intp)
        deltas = (offsets[:, 0] * nky + offsets[:, 1]) * nkx + offsets[:, 2]
        fz, fy, fx = cells.frac
        # Stage 1: the _K nearest seeds of each superblock centre.
        best = [np.full(flat0.shape, _KEY_MAX, np.int32) for _ in range(_K)]
        flat = np.empty_like(flat0)
        for j, (dz, dy, dx) in enumerate(_OFFSETS):
            np.add(flat0, deltas[j], out=flat)
            d = np.square((crel[0] - f32(dz * _CELL))[:, None, None] - np.take(fz, flat))
            d += np.square((crel[1] - f32(dy * _CELL))[None, :, None] - np.take(fy, flat))
            d += np.square((crel[2] - f32(dx * _CELL))[None, None, :] - np.take(fx, flat))
            _insert(best, _keyed(d, j))
        cand_flat, cand_pos = [], []
        for key in best:
            which = (key & 31).astype(np.intp)
            fk = flat0 + np.take(deltas, which)
            cand_flat.append(fk)
            cand_pos.append(
                [
                    np.take(offsets[:, i], which).astype(f32) * f32(_CELL)
                    + np.take(cells.frac[i], fk)
                    for i in range(3)
                ]
            )
        # Stage 2: per block parity (pz, py, px), the two nearest of the candidates. A block
        # centre is its superblock centre -+ 2 along each axis.
        shift = [f32(-_B / 2), f32(_B / 2)]
        tops = {
            p: [np.full(flat0.shape, _KEY_MAX, np.int32) for _ in range(2)]
            for p in np.ndindex(2, 2, 2)
        }
        for k, pos in enumerate(cand_pos):
            terms = [
                [np.square((crel[i] + shift[p])[_AXIS[i]] - pos[i]) for p in (0, 1)]
                for i in range(3)
            ]
            for (pz, py, px), top in tops.items():
                d = terms[0][pz] + terms[1][py]
                d += terms[2][px]
                _insert(top, _keyed(d, k))
        flat_stack = np.stack(cand_flat)
        shape6 = (sbz.size, 2, sby.size, 2, sbx.size, 2)
        fa6 = np.empty(shape6, np.intp)
        fb6 = np.empty(shape6, np.intp)
        for (pz, py, px), (k1, k2) in tops.items():
            for f6, key in ((fa6, k1), (fb6, k2)):
                f6[:, pz, :, py, :, px] = np.take_along_axis(
                    flat_stack, (key & 31).astype(np.intp)[None], 0
                )[0]
        fa = fa6.reshape(sbz.size * 2, sby.size * 2, sbx.size * 2)
        fb = fb6.reshape(sbz.size * 2, sby.size * 2, sbx.size * 2)
        # Block geometry from the two seeds, relative to each block's origin.
        origin = [np.arange(2 * b[0], 2 * b[-1] + 2, dtype=np.int64) * _B for b in sb]
        o3 = (origin[0][:, None, None], origin[1][None, :, None], origin[2][None, None, :])
        a = tuple(np.take(cells.pos[i], fa) - o3[i] for i in range(3))
        b = tuple(np.take(cells.pos[i], fb) - o3[i] for i in range(3))
        ab = [a[i] - b[i] for i in range(3)]
        norm = np.maximum(np.sqrt(ab[0] ** 2 + ab[1] ** 2 + ab[2] ** 2), 1e-9)
        ba, bb = np.take(cells.bright, fa), np.take(cells.bright, fb)
        self.fields: dict[str, np.ndarray] = {
            "s0": _ALPHA * _bisector_distance((0.0, 0.0, 0.0), a, b),
            "uz": _ALPHA * ab[0] / norm,
            "uy": _ALPHA * ab[1] / norm,
            "ux": _ALPHA * ab[2] / norm,
            "bmid": (ba + bb) * 0.5,
            "bhalf": (ba - bb) * 0.5,
            # the organelle of the block's own cell
            "gz": np.take(cells.org_g[0], fa),
            "gy": np.take(cells.org_g[1], fa),
            "gx": np.take(cells.org_g[2], fa),
            "oz": np.take(cells.org_ctr[0], fa) - o3[0],
            "oy": np.take(cells.org_ctr[1], fa) - o3[1],
            "ox": np.take(cells.org_ctr[2], fa) - o3[2],
            "q0": np.take(cells.org_q0, fa),
            "qlo": np.take(cells.org_lo, fa),
        }
        for name, value in self.fields.items():
            self.fields[name] = value.astype(f32)

    def part(self, zb: slice, yb: slice) -> dict[str, np.ndarray]:
        """The fields of blocks ``zb`` x ``yb`` (block offsets in this object) x all x."""
        return {name: value[zb, yb] for name, value in self.fields.items()}


# -- the volume ------------------------------------------------------------------------------


class VolumeLike(Protocol):
    """What :func:`write_tiff_stack` needs: a shape, a dtype and region reads."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    def read(self, region: Region) -> np.ndarray: ...


class SyntheticEM:
    """A seeded synthetic EM volume (z, y, x) of ``uint8``, ``int16`` or ``uint16``.

    Nothing is stored: :meth:`read` computes any region on demand (about 10^8 voxels/s on one
    core), so ``read(region) == array()[region]`` and a 2 GiB stack costs only slab-sized
    memory. :meth:`classes` gives the matching class map (see ``CLASS_*``).
    """

    def __init__(self, shape: tuple[int, int, int], dtype: Any = "uint8", seed: int = 0) -> None:
        if len(shape) != 3 or any(int(s) < 1 for s in shape):
            raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape!r}")
        self.shape: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.dtype: np.dtype[Any] = np.dtype(dtype).newbyteorder("=")
        if self.dtype not in _SUPPORTED:
            raise ValueError(f"dtype must be uint8, int16 or uint16, got {self.dtype}")
        self.seed = int(seed)
        # Noise: v * (1 + slope * n1) + floor * n2, n1 and n2 from two tables of prime sizes
        # (+0.5 in the second so that the final truncation rounds).
        self._tables = (
            (1.0 + _NOISE_SLOPE * _noise_table(self.seed, 40, 65521)).astype(np.float32),
            (0.5 + _NOISE_FLOOR * _noise_table(self.seed, 42, 65519)).astype(np.float32),
        )
        self._extended: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"SyntheticEM(shape={self.shape}, dtype={self.dtype.name!r}, seed={self.seed})"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, region: Region) -> np.ndarray:
        """The voxels of ``region`` (three slices, z, y, x), C-contiguous, native byte order."""
        return self._render(region, image=True, classes=False)[0]  # type: ignore[return-value]

    def classes(self, region: Region) -> np.ndarray:
        """Per-voxel class of ``region``: 0 background/cytoplasm, 1 membrane, 2 organelle."""
        return self._render(region, image=False, classes=True)[1]  # type: ignore[return-value]

    def read_with_classes(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """Both :meth:`read` and :meth:`classes` of ``region`` in one pass."""
        img, cls = self._render(region, image=True, classes=True)
        assert img is not None and cls is not None
        return img, cls

    def array(self) -> np.ndarray:
        """The whole volume (use :meth:`read` by region for big shapes)."""
        return self.read(self._full())

    def _full(self) -> Region:
        return (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))

    # -- rendering ---------------------------------------------------------------------------

    def _bounds(self, region: Region) -> list[tuple[int, int]]:
        if len(region) != 3:
            raise ValueError(f"region must be three slices (z, y, x), got {region!r}")
        out = []
        for sl, n in zip(region, self.shape, strict=True):
            if not isinstance(sl, slice):
                raise TypeError(f"region must be slices, got {sl!r}")
            start, stop, step = sl.indices(n)
            if step != 1:
                raise ValueError(f"region slices must have step 1, got {sl!r}")
            out.append((start, max(start, stop)))
        return out

    def _render(
        self, region: Region, *, image: bool, classes: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        (z0, z1), (y0, y1), (x0, x1) = self._bounds(region)
        shape = (z1 - z0, y1 - y0, x1 - x0)
        img = np.empty(shape, self.dtype) if image else None
        cls = np.empty(shape, np.uint8) if classes else None
        if 0 in shape:
            return img, cls
        sb = 2 * _B  # superblock edge, voxels
        sbz_all = np.arange(z0 // sb, (z1 - 1) // sb + 1)
        sby_all = np.arange(y0 // sb, (y1 - 1) // sb + 1)
        sbx = np.arange(x0 // sb, (x1 - 1) // sb + 1)
        xa = int(sbx[0]) * sb
        width = sbx.size * sb
        lo = tuple(int(b[0]) * sb // _CELL - 1 for b in (sbz_all, sby_all, sbx))
        hi = tuple(int(b[-1]) * sb // _CELL + 1 for b in (sbz_all, sby_all, sbx))
        cells = _Cells(self.seed, lo, hi)  # type: ignore[arg-type]
        # Geometry is found for slabs of superblocks, voxels are filled for tiles of a slab.
        slab_y = max(1, min(sby_all.size, _SLAB_SUPERBLOCKS // sbx.size))
        slab_z = max(1, _SLAB_SUPERBLOCKS // (slab_y * sbx.size))
        rows = max(1, _TILE_ELEMS // (2 * width))  # superblocks along y per tile
        for i in range(0, sbz_all.size, slab_z):
            sbz = sbz_all[i : i + slab_z]
            for j in range(0, sby_all.size, slab_y):
                sby = sby_all[j : j + slab_y]
                geometry = _Blocks(cells, sbz, sby, sbx)
                for iz, z in enumerate(sbz):
                    for jy in range(0, sby.size, rows):
                        part = geometry.part(
                            slice(2 * iz, 2 * iz + 2), slice(2 * jy, 2 * min(sby.size, jy + rows))
                        )
                        y_first, y_count = int(sby[jy]), min(rows, sby.size - jy)
                        tile = self._tile(part, int(z), y_first, xa, image=image, classes=classes)
                        # Place the tile's voxels that fall inside the region.
                        tz0, ty0 = int(z) * sb, y_first * sb
                        sz = slice(max(z0, tz0), min(z1, tz0 + sb))
                        sy = slice(max(y0, ty0), min(y1, ty0 + y_count * sb))
                        src = (
                            slice(sz.start - tz0, sz.stop - tz0),
                            slice(sy.start - ty0, sy.stop - ty0),
                            slice(x0 - xa, x1 - xa),
                        )
                        dst = (
                            slice(sz.start - z0, sz.stop - z0),
                            slice(sy.start - y0, sy.stop - y0),
                        )
                        if img is not None:
                            img[dst] = tile[0][src]
                        if cls is not None:
                            cls[dst] = tile[1][src]
        return img, cls

    def _tile(
        self,
        g: dict[str, np.ndarray],
        sbz: int,
        sby: int,
        xa: int,
        *,
        image: bool,
        classes: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voxels of one z-superblock of blocks ``g`` (fields of :class:`_Blocks`).

        ``sbz`` is the superblock z index, ``sby`` the first superblock y index, ``xa`` the
        first voxel x.
        """
        f32 = np.float32
        _, nby, nbx = g["s0"].shape
        bz = np.arange(2 * sbz, 2 * sbz + 2)
        by = np.arange(2 * sby, 2 * sby + nby)
        bx = np.arange(xa // _B, xa // _B + nbx)
        nz, ny, width = bz.size * _B, by.size * _B, bx.size * _B
        out_img = np.empty((nz, ny, width), self.dtype) if image else np.empty(0)
        out_cls = np.empty((nz, ny, width), np.uint8) if classes else np.empty(0)
        img5 = out_img.reshape(bz.size, _B, by.size, _B, width) if image else None
        cls5 = out_cls.reshape(bz.size, _B, by.size, _B, width) if classes else None

        def xrep(a: np.ndarray) -> np.ndarray:
            return np.repeat(a, _B, axis=2)

        # Per-block coefficients spread along x (nbz, nby, width); x-terms folded in once.
        lx = np.tile(np.arange(_B, dtype=f32), bx.size)  # block-local x of each column
        s_x = xrep(g["s0"])
        s_x += xrep(g["ux"]) * lx
        q_x = xrep(g["ox"])
        np.subtract(lx, q_x, out=q_x)
        np.square(q_x, out=q_x)
        q_x *= xrep(g["gx"])
        q_x += xrep(g["q0"])
        uz, gz, oz = xrep(g["uz"]), xrep(g["gz"]), xrep(g["oz"])
        uy, gy, oy = xrep(g["uy"]), xrep(g["gy"]), xrep(g["oy"])
        s_y = [uy * f32(i) for i in range(_B)]
        q_y = [gy * np.square(f32(i) - oy) for i in range(_B)]
        if image:
            bhalf, qlo = xrep(g["bhalf"]).view(np.int32), xrep(g["qlo"])
            drift_zy, drift_yx = self._illumination(bz, by, bx)
            bmid = xrep(g["bmid"])
            bmid_y = [bmid + drift_yx[:, iy, :] for iy in range(_B)]
            (wa, wb), (off_a, off_b) = self._noise_rows(bz, by, bx)
            lo, hi, scale, offset = _quantisation(self.dtype)
            lo_m = f32(1.0 - _MEMBRANE_DEPTH)
        s = np.empty_like(s_x)
        q = np.empty_like(s_x)
        v = np.empty_like(s_x)
        vi = v.view(np.int32)
        for iz in range(_B):
            s_z = s_x + uz * f32(iz)
            q_z = q_x + gz * np.square(f32(iz) - oz)
            for iy in range(_B):
                np.add(s_z, s_y[iy], out=s)
                np.add(q_z, q_y[iy], out=q)
                if classes:
                    c = (q < 1.0).view(np.uint8) * np.uint8(CLASS_ORGANELLE)
                    c[np.abs(s) < _ALPHA * _MEM_CLASS] = CLASS_MEMBRANE
                    cls5[:, iz, :, iy, :] = c  # type: ignore[index]
                if not image:
                    continue
                # cell brightness, bmid +- bhalf on either side of the wall (sign of s), then
                # the illumination drift
                np.bitwise_and(s.view(np.int32), _SIGN, out=vi)
                np.bitwise_xor(vi, bhalf, out=vi)
                v += bmid_y[iy]
                v *= drift_zy[:, iz, :, iy, None]
                # membrane and organelle darken: factor min(clip(|s~|, 1 - depth), q~, 1)
                np.abs(s, out=s)
                np.maximum(s, lo_m, out=s)
                np.maximum(q, qlo, out=q)
                np.minimum(s, q, out=s)
                np.minimum(s, f32(1.0), out=s)
                v *= s
                # signal-dependent noise: v * (1 + slope * n1) + floor * n2 (+ 0.5 to round)
                v *= wa[off_a[:, iz, :, iy]]
                v += wb[off_b[:, iz, :, iy]]
                if scale != 1.0:
                    v *= f32(scale)
                    v += f32(offset)
                np.clip(v, lo, hi, out=v)
                img5[:, iz, :, iy, :] = v  # type: ignore[index]
        return out_img, out_cls

    def _illumination(
        self, bz: np.ndarray, by: np.ndarray, bx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Smooth drift: a factor over (z, y) with per-slice flicker, a term over (y, x)."""
        seed = self.seed
        zz = bz[:, None] * _B + np.arange(_B)[None, :]  # (nbz, B)
        yy = by[:, None] * _B + np.arange(_B)[None, :]  # (nby, B)
        xx = int(bx[0]) * _B + np.arange(bx.size * _B)
        nz_ = _value_noise_1d(seed, 50, zz, 160.0)
        ny1 = _value_noise_1d(seed, 51, yy, 200.0)
        ny2 = _value_noise_1d(seed, 52, yy, 260.0)
        nx1 = _value_noise_1d(seed, 53, xx, 230.0)
        nx2 = _value_noise_1d(seed, 54, xx, 700.0)
        flicker = _FLICKER * (2.0 * _uniform(seed, 55, zz) - 1.0)
        drift_zy = (
            1.0
            + flicker[:, :, None, None]
            + _DRIFT * 0.5 * (nz_[:, :, None, None] * ny1[None, None, :, :])
        )
        drift_yx = _DRIFT * 0.5 * _CYTO * (ny2[:, :, None] * nx1[None, None, :] + 0.6 * nx2)
        return drift_zy.astype(np.float32), drift_yx.astype(np.float32)

    def _noise_rows(
        self, bz: np.ndarray, by: np.ndarray, bx: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Row views of the noise tables and, per (z, y) row, the hashed start offsets.

        Voxel (z, y, x) takes table[(h(seed, z, y) + x) mod n]: a pure function of position.
        """
        width = bx.size * _B
        ext = self._extended.get(width)
        if ext is None:
            # tables repeated cyclically so that any row of ``width`` is a contiguous window
            ext = (
                np.resize(self._tables[0], self._tables[0].size + width - 1),
                np.resize(self._tables[1], self._tables[1].size + width - 1),
            )
            if len(self._extended) > 8:
                self._extended.clear()
            self._extended[width] = ext
        ea, eb = ext
        wa, wb = sliding_window_view(ea, width), sliding_window_view(eb, width)
        zz = (bz[:, None] * _B + np.arange(_B)[None, :])[:, :, None, None]
        yy = (by[:, None] * _B + np.arange(_B)[None, :])[None, None, :, :]
        x0 = int(bx[0]) * _B
        offs = []
        for salt, table in ((60, self._tables[0]), (61, self._tables[1])):
            n = table.size
            offs.append((_hash(self.seed, salt, zz, yy).astype(np.int64) + x0 % n) % n)
        return (wa, wb), (offs[0], offs[1])


def _quantisation(dtype: np.dtype[Any]) -> tuple[float, float, float, float]:
    """(lo, hi, scale, offset): grey g becomes int(clip(g * scale + offset, lo, hi)).

    The cast truncates; the +0.5 folded into the noise makes that a rounding for uint8.
    """
    info = np.iinfo(dtype)
    if dtype == np.uint8:
        return 0.0, 255.0, 1.0, 0.0
    if dtype == np.int16:
        return float(info.min), float(info.max), _INT16_SCALE, _INT16_OFFSET
    return 0.0, float(info.max), _UINT16_SCALE, _UINT16_OFFSET


def synthetic_em(
    shape: tuple[int, int, int], dtype: Any = "uint8", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(volume, classes)`` of a :class:`SyntheticEM`, whole, in one pass."""
    em = SyntheticEM(shape, dtype, seed)
    return em.read_with_classes(em._full())


# -- TIFF writing ----------------------------------------------------------------------------


def _pages(source: VolumeLike, slab: int, dtype: np.dtype[Any]) -> Iterator[np.ndarray]:
    """Pages of ``source`` in ``dtype``; the next slab is computed while this one is written."""
    nz, ny, nx = source.shape

    def read(z: int) -> np.ndarray:
        block = source.read((slice(z, min(nz, z + slab)), slice(0, ny), slice(0, nx)))
        return np.ascontiguousarray(block, dtype=dtype)

    with ThreadPoolExecutor(1, thread_name_prefix="tiff-slab") as pool:
        pending = pool.submit(read, 0)
        for z in range(0, nz, slab):
            block = pending.result()
            if z + slab < nz:
                pending = pool.submit(read, z + slab)
            yield from block


def write_tiff_stack(
    path: str | os.PathLike[str],
    source: VolumeLike,
    *,
    byteorder: Literal["<", ">"] = "<",
    imagej: bool = False,
    voxel_size_um: float | tuple[float, float, float] | None = None,
    rowsperstrip: int | None = None,
    slab: int = 32,
) -> Path:
    """Write ``source`` as a multi-page uncompressed classic TIFF, one page per z, slab by slab.

    ``imagej=True`` writes an ImageJ hyperstack (``unit=µm``, ``spacing`` = z size) as IDR's
    originals are; otherwise a plain libtiff-style stack without description. With no voxel
    size the file carries no calibration (XResolution 1 per inch, as the EPFL files).
    ``voxel_size_um`` is one size or (z, y, x). Memory stays at two slabs of ``slab`` pages
    (the next is computed while one is written); the file appears under its name only when
    complete (written to ``<name>.part``, then renamed).
    """
    import tifffile

    path = Path(path)
    if byteorder not in ("<", ">"):
        raise ValueError(f"byteorder must be '<' or '>', got {byteorder!r}")
    dtype = np.dtype(source.dtype).newbyteorder(byteorder)
    if imagej and dtype.kind == "i":
        raise ValueError("ImageJ hyperstacks cannot hold signed integers; use imagej=False")
    if voxel_size_um is None:
        vz = vy = vx = None
    elif isinstance(voxel_size_um, (int, float)):
        vz = vy = vx = float(voxel_size_um)
    else:
        vz, vy, vx = (float(v) for v in voxel_size_um)

    kwargs: dict[str, Any] = {
        "shape": tuple(source.shape),
        "dtype": dtype,
        "photometric": "minisblack",
        "rowsperstrip": rowsperstrip,
    }
    if imagej:
        meta: dict[str, Any] = {"axes": "ZYX"}
        if vz is not None:
            # ImageJ writes the micro sign as a literal \\u00B5 escape (ASCII description)
            meta.update(spacing=vz, unit="\\u00B5m")
            kwargs.update(resolution=(1.0 / vx, 1.0 / vy), resolutionunit="NONE")  # type: ignore[operator]
        kwargs["metadata"] = meta
    else:
        kwargs["metadata"] = None
        kwargs["software"] = False
        if vx is None:
            kwargs.update(resolution=(1, 1), resolutionunit="INCH")
        else:
            # pixels per centimetre, as libtiff writers calibrate
            kwargs.update(resolution=(1e4 / vx, 1e4 / vy), resolutionunit="CENTIMETER")  # type: ignore[operator]

    tmp = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tifffile.TiffWriter(tmp, byteorder=byteorder, bigtiff=False, imagej=imagej) as tif:
            tif.write(_pages(source, max(1, slab), dtype), **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# -- textured classes (search-by-example benchmarks and tests) --------------------------------

TEXTURE_CLASSES = ("cytoplasm", "lamellae", "vesicles", "granules", "cells")
"""Class names of :func:`textured_classes`, by class index."""


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Value noise: a coarse random grid (one value per ``cell`` pixels) bilinearly upsampled."""
    import cv2

    gy, gx = shape[0] // cell + 2, shape[1] // cell + 2
    coarse = rng.standard_normal((gy, gx)).astype(np.float32)
    big = cv2.resize(coarse, (gx * cell, gy * cell), interpolation=cv2.INTER_CUBIC)
    return big[: shape[0], : shape[1]]


def _texture(cls: int, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """One 2-D texture of class ``cls``: mean about 0, similar contrast, random phase/angle."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    if cls == 0:  # cytoplasm: slow cloudy variation
        img = 0.8 * _smooth_noise(rng, shape, 12)
    elif cls == 1:  # lamellae: stacked membranes (myelin-like), a random direction per region
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5.0, 7.0)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        wobble = 0.6 * _smooth_noise(rng, shape, 16)
        img = np.cos(phase + wobble)
    elif cls in (2, 3):  # vesicles (dark rings, r 4-6) or granules (small dark dots, r 1.5-2.5)
        img = np.zeros(shape, np.float32)
        if cls == 2:
            count, radius = ny * nx // 180, (4.0, 6.0)
        else:
            count, radius = ny * nx // 40, (1.5, 2.5)
        cy = rng.uniform(0, ny, count)
        cx = rng.uniform(0, nx, count)
        rr = rng.uniform(*radius, count)
        for y, x, r in zip(cy, cx, rr, strict=True):
            y0, y1 = max(0, int(y - r - 2)), min(ny, int(y + r + 3))
            x0, x1 = max(0, int(x - r - 2)), min(nx, int(x + r + 3))
            d = np.hypot(yy[y0:y1, x0:x1] - y, xx[y0:y1, x0:x1] - x)
            blob = np.exp(-(((d - r) / 1.0) ** 2)) if cls == 2 else (d < r).astype(np.float32)
            np.minimum(img[y0:y1, x0:x1], -blob, out=img[y0:y1, x0:x1])
        img = 1.6 * img + 0.5
    else:  # cells: a crop of the membrane tessellation of SyntheticEM
        em = SyntheticEM((1, ny, nx), "uint8", seed=int(rng.integers(1 << 30)))
        img = (em.array()[0].astype(np.float32) - _CYTO) / 40.0
    return img.astype(np.float32)


def textured_classes(
    shape: tuple[int, int, int], *, region: int = 128, seed: int = 0, noise: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """``(volume uint8, class map uint8)``: square regions of ``region`` pixels in y-x, each
    filled with one texture of :data:`TEXTURE_CLASSES` through the whole depth.

    Region (ry, rx) of the y-x grid has class ``(rx + 2 ry) % 5`` (classes shuffled by
    ``seed``), so neighbours differ and every class appears once the grid has five regions;
    each region gets its own random orientation, phase and layout, every slice its own noise.
    Built whole in memory: meant for test and benchmark volumes of a few tens of MB.
    """
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(TEXTURE_CLASSES))
    gy, gx = -(-ny // region), -(-nx // region)
    vol = np.empty((nz, ny, nx), np.uint8)
    classes = np.empty((ny, nx), np.uint8)
    planes = np.empty((ny, nx), np.float32)
    for i in range(gy * gx):
        ry, rx = divmod(i, gx)
        sl = (
            slice(ry * region, min(ny, (ry + 1) * region)),
            slice(rx * region, min(nx, (rx + 1) * region)),
        )
        cls = int(order[(rx + 2 * ry) % len(order)])  # neighbours differ
        classes[sl] = cls
        planes[sl] = _texture(cls, rng, (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start))
    for z in range(nz):
        drift = 0.15 * _smooth_noise(rng, (ny, nx), 64)
        img = planes + drift + noise * rng.standard_normal((ny, nx), dtype=np.float32)
        vol[z] = np.clip(128.0 + 40.0 * img, 0, 255).astype(np.uint8)
    return vol, np.broadcast_to(classes, (nz, ny, nx)).copy()
