"""Where the patches of a volume are: a regular grid of fixed physical size on one level.

The level is the pyramid level whose y-x voxel size is nearest (in ratio) to
``patch_nm / embedder pixels``, so a 512 nm patch is read at 8 nm whatever the volume's own
resolution. Patches are ``patch_nm`` wide and ``stride_nm`` apart. In 2-D mode they lie on every
k-th slice of that level (k from ``slice_every``, or the stride in z when 0); in 3-D mode they
are cubes. Centres are given in level-0 voxels (z, y, x) and in nm, as a user names a place.

Work is cut into blocks: one z position (slice or cube layer) times a band of patch rows whose
voxels fit in ``tile_bytes``, so memory follows the budget, never the volume.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from emingest.errors import ConfigError

Region = tuple[slice, slice, slice]


@dataclass(frozen=True)
class LevelInfo:
    path: str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float] | None


@dataclass(frozen=True)
class PatchGrid:
    level: int
    level_path: str
    level_shape: tuple[int, int, int]
    factor: tuple[float, float, float]
    """Level-0 voxels per voxel of this level, z y x."""
    patch_px: tuple[int, int, int]
    """Voxels of this level one patch covers, z y x (z = 1 in 2-D mode)."""
    stride_px: tuple[int, int, int]
    origin: tuple[int, int, int]
    """Start (this level's voxels) of the first patch."""
    counts: tuple[int, int, int]
    """Patches along z, y, x."""
    band_rows: int
    """Patch rows per block."""
    voxel0_nm: tuple[float, float, float] | None
    translation0_nm: tuple[float, float, float]

    @property
    def n_patches(self) -> int:
        return int(np.prod(self.counts))

    def blocks(self) -> Iterator[tuple[int, int]]:
        """(z index, band index) of every block, in order."""
        bands = -(-self.counts[1] // self.band_rows) if self.counts[1] else 0
        for iz in range(self.counts[0]):
            for band in range(bands):
                yield iz, band

    def rows(self, band: int) -> range:
        return range(band * self.band_rows, min(self.counts[1], (band + 1) * self.band_rows))

    def start(self, axis: int, index: int) -> int:
        return self.origin[axis] + index * self.stride_px[axis]

    def block_region(self, iz: int, band: int) -> Region:
        """The voxels (this level) a block reads: one z range, a y band, every x."""
        rows = self.rows(band)
        z0 = self.start(0, iz)
        y0 = self.start(1, rows.start)
        y1 = self.start(1, rows.stop - 1) + self.patch_px[1]
        x0 = self.start(2, 0)
        x1 = self.start(2, self.counts[2] - 1) + self.patch_px[2]
        return slice(z0, z0 + self.patch_px[0]), slice(y0, y1), slice(x0, x1)

    def center0(self, starts: np.ndarray) -> np.ndarray:
        """Level-0 voxel (int) of the centre of patches starting at ``starts`` [..., 3]."""
        half = np.asarray(self.patch_px, np.float64) / 2.0
        return np.floor((starts + half) * np.asarray(self.factor)).astype(np.int64)

    def block_centers(self, iz: int, band: int) -> np.ndarray:
        """int64 [rows, nx, 3] level-0 centres of a block's patches."""
        rows = self.rows(band)
        ys = np.array([self.start(1, r) for r in rows])
        xs = np.array([self.start(2, c) for c in range(self.counts[2])])
        starts = np.empty((len(ys), len(xs), 3), np.float64)
        starts[..., 0] = self.start(0, iz)
        starts[..., 1] = ys[:, None]
        starts[..., 2] = xs[None, :]
        return self.center0(starts)

    def start_for_center0(self, zyx: tuple[int, int, int]) -> tuple[int, int, int]:
        """Start (this level) of the patch centred nearest to level-0 voxel ``zyx``, clamped
        inside the level."""
        out = []
        for axis in range(3):
            c = (zyx[axis] + 0.5) / self.factor[axis] - self.patch_px[axis] / 2.0
            hi = self.level_shape[axis] - self.patch_px[axis]
            out.append(int(min(max(round(c), 0), max(hi, 0))))
        return out[0], out[1], out[2]

    def to_nm(self, center0: np.ndarray) -> np.ndarray | None:
        """NGFF physical coordinates (voxel index x size + translation) of level-0 voxels."""
        if self.voxel0_nm is None:
            return None
        return center0 * np.asarray(self.voxel0_nm) + np.asarray(self.translation0_nm)

    def to_attrs(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "level_path": self.level_path,
            "level_shape": list(self.level_shape),
            "factor": list(self.factor),
            "patch_px": list(self.patch_px),
            "stride_px": list(self.stride_px),
            "origin": list(self.origin),
            "counts": list(self.counts),
            "band_rows": self.band_rows,
            "voxel0_nm": list(self.voxel0_nm) if self.voxel0_nm else None,
            "translation0_nm": list(self.translation0_nm),
        }

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> PatchGrid:
        return cls(
            level=int(a["level"]),
            level_path=str(a["level_path"]),
            level_shape=_t3i(a["level_shape"]),
            factor=_t3f(a["factor"]),
            patch_px=_t3i(a["patch_px"]),
            stride_px=_t3i(a["stride_px"]),
            origin=_t3i(a["origin"]),
            counts=_t3i(a["counts"]),
            band_rows=int(a["band_rows"]),
            voxel0_nm=_t3f(a["voxel0_nm"]) if a.get("voxel0_nm") else None,
            translation0_nm=_t3f(a.get("translation0_nm") or (0.0, 0.0, 0.0)),
        )


def _t3i(v: Any) -> tuple[int, int, int]:
    return int(v[0]), int(v[1]), int(v[2])


def _t3f(v: Any) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def choose_level(levels: list[LevelInfo], target_nm: float | None) -> int:
    """The level whose y-x voxel size is nearest to ``target_nm`` by ratio (ties: the finer);
    level 0 when voxel sizes are unknown."""
    if target_nm is None or any(lv.voxel_size_nm is None for lv in levels):
        return 0
    best, best_err = 0, math.inf
    for i, lv in enumerate(levels):
        assert lv.voxel_size_nm is not None
        yx = math.sqrt(lv.voxel_size_nm[1] * lv.voxel_size_nm[2])
        err = abs(math.log(yx / target_nm))
        if err < best_err - 1e-9:
            best, best_err = i, err
    return best


def plan_grid(
    levels: list[LevelInfo],
    *,
    embedder_px: int,
    patch_nm: float,
    stride_nm: float | None,
    slice_every: int,
    mode: str,
    tile_bytes: int,
    itemsize: int,
    translation0_nm: tuple[float, float, float] | None = None,
) -> PatchGrid:
    """The grid of one volume (see the module docstring). Without voxel sizes, a patch is
    ``embedder_px`` voxels of level 0 and the stride keeps its ratio to the patch."""
    if mode not in ("2d", "3d"):
        raise ConfigError(f"embed mode must be '2d' or '3d', got {mode!r}")
    if patch_nm <= 0 or (stride_nm is not None and stride_nm <= 0):
        raise ConfigError("embed patch_nm and stride_nm must be > 0")
    stride_nm = stride_nm or patch_nm
    known = all(lv.voxel_size_nm is not None for lv in levels)
    level = choose_level(levels, patch_nm / embedder_px if known else None)
    lv = levels[level]
    shape0, shape = levels[0].shape, lv.shape
    if known:
        v = lv.voxel_size_nm
        v0 = levels[0].voxel_size_nm
        assert v is not None and v0 is not None
        factor = _t3f([v[i] / v0[i] for i in range(3)])
        patch = [max(1, round(patch_nm / v[i])) for i in range(3)]
        stride = [max(1, round(stride_nm / v[i])) for i in range(3)]
    else:
        factor = _t3f([shape0[i] / shape[i] for i in range(3)])
        patch = [embedder_px] * 3
        stride = [max(1, round(embedder_px * stride_nm / patch_nm))] * 3
    if mode == "2d":
        patch[0] = 1
        stride[0] = slice_every or stride[0]
    counts, origin = [], []
    for axis in range(3):
        n = (shape[axis] - patch[axis]) // stride[axis] + 1 if shape[axis] >= patch[axis] else 0
        counts.append(max(0, n))
        used = (n - 1) * stride[axis] + patch[axis] if n > 0 else 0
        origin.append((shape[axis] - used) // 2)  # centre the grid in the volume
    if 0 in counts:
        counts = [0, 0, 0]
    row_bytes = max(1, patch[0] * (patch[1] + stride[1]) * shape[2] * itemsize)
    band_rows = max(1, min(max(counts[1], 1), tile_bytes // row_bytes))
    return PatchGrid(
        level=level,
        level_path=lv.path,
        level_shape=shape,
        factor=factor,
        patch_px=_t3i(patch),
        stride_px=_t3i(stride),
        origin=_t3i(origin),
        counts=_t3i(counts),
        band_rows=band_rows,
        voxel0_nm=levels[0].voxel_size_nm,
        translation0_nm=translation0_nm or (0.0, 0.0, 0.0),
    )
