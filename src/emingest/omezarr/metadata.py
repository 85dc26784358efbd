"""OME-NGFF 0.5 metadata for the volumes we write: axes, multiscales, pyramid geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NGFF_VERSION = "0.5"
AXES = ("z", "y", "x")


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path, shape, voxel size and NGFF translation (nm), and
    ``factor``, how many voxels of the level before one of its voxels spans on each axis (1 or
    2; (1, 1, 1) for s0 and for levels copied from an archive's own pyramid)."""

    path: str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float]
    translation_nm: tuple[float, float, float]
    factor: tuple[int, int, int] = (1, 1, 1)


def downsampled_shape(
    shape: Sequence[int], factor: Sequence[int] = (2, 2, 2)
) -> tuple[int, int, int]:
    """Shape after one downsampling by ``factor``; an odd edge keeps its last voxel (ceil)."""
    z, y, x = (-(-int(n) // int(f)) for n, f in zip(shape, factor, strict=True))
    return (z, y, x)


# Voxel sizes within this relative margin of 2x the finest count as 2x (50 vs 25.0000001 nm).
_COARSER_MARGIN = 1e-9


def next_factor(shape: Sequence[int], voxel_nm: Sequence[float]) -> tuple[int, int, int]:
    """Which axes the next level halves: every axis longer than one voxel whose voxel is less
    than twice the finest such axis's. A coarse axis (50 nm z over 5 nm y, x) waits until the
    others catch up, as viewers expect; (1, 1, 1) when every axis is one voxel long."""
    open_axes = [i for i, n in enumerate(shape) if n > 1]
    if not open_axes:
        return (1, 1, 1)
    finest = min(float(voxel_nm[i]) for i in open_axes)
    limit = 2 * finest * (1 - _COARSER_MARGIN)
    f = [2 if i in open_axes and float(voxel_nm[i]) < limit else 1 for i in range(3)]
    return (f[0], f[1], f[2])


def plan_levels(
    shape: Sequence[int],
    chunk_shape: Sequence[int],
    voxel_size_nm: Sequence[float] | None,
    *,
    max_levels: int | None = None,
    origin_nm: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[Level]:
    """Levels s0, s1, ... until a whole level fits in one chunk (every axis), or exactly
    ``max_levels`` levels when set (fewer only when a level is down to one voxel).

    Each level halves the axes :func:`next_factor` picks (``None`` voxel size: isotropic).
    A level-k voxel averages ``F`` level-0 voxels per axis (``F`` the product of the factors so
    far), so its centre lies ``(F - 1) / 2`` voxels in: translation ``origin + (F - 1) / 2 *
    voxel_size_0`` (NGFF 0.5, "coordinateTransformations"). Labels use the same levels.
    """
    voxel = tuple(float(v) for v in voxel_size_nm) if voxel_size_nm else (1.0, 1.0, 1.0)
    current = tuple(int(n) for n in shape)
    total = [1, 1, 1]
    step: tuple[int, int, int] = (1, 1, 1)
    levels: list[Level] = []
    while True:
        levels.append(
            Level(
                path=f"s{len(levels)}",
                shape=current,  # type: ignore[arg-type]
                voxel_size_nm=tuple(v * f for v, f in zip(voxel, total, strict=True)),  # type: ignore[arg-type]
                translation_nm=tuple(  # type: ignore[arg-type]
                    float(o) + (f - 1) / 2 * v
                    for o, v, f in zip(origin_nm, voxel, total, strict=True)
                ),
                factor=step,
            )
        )
        if max_levels is not None:
            if len(levels) >= max_levels:
                return levels
        elif all(n <= c for n, c in zip(current, chunk_shape, strict=True)):
            return levels
        step = next_factor(current, levels[-1].voxel_size_nm)
        if step == (1, 1, 1):
            return levels
        current = downsampled_shape(current, step)
        total = [t * f for t, f in zip(total, step, strict=True)]


def multiscales_attrs(
    name: str,
    levels: Sequence[Level],
    *,
    method: str = "mean",
    label: bool = False,
    unit: str | None = "nanometer",
) -> dict[str, Any]:
    """The ``ome`` attribute of an image group (NGFF 0.5 on Zarr v3).

    ``method`` names how levels were made: "mean" (ours), "mode" (labels) or "copied" (the
    archive's own pyramid). ``label`` makes it a labels image of the image two folders up.
    ``unit=None`` (voxel size unknown) leaves the axes without a unit, so the scales (1.0, as
    NGFF requires one) count voxels, not made-up nanometres.
    """
    descriptions = {
        "mean": "mean over 2x2x2 blocks (1 on axes already 2x coarser than the finest, or one "
        "voxel long), integers rounded half up; odd edges averaged over the voxels present",
        "mode": "most frequent label of each block of the image's levels (ties to the smaller "
        "value), so label values are never mixed and every level overlays its image level",
        "copied": "levels copied unchanged from the source archive's own pyramid",
    }
    attrs: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": [
                    {"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in AXES
                ],
                "datasets": [
                    {
                        "path": lv.path,
                        "coordinateTransformations": [
                            {"type": "scale", "scale": list(lv.voxel_size_nm)},
                            {"type": "translation", "translation": list(lv.translation_nm)},
                        ],
                    }
                    for lv in levels
                ],
                "type": method,
                "metadata": {"method": "emingest", "description": descriptions[method]},
            }
        ],
    }
    if label:
        attrs["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
    return attrs
