"""OME-NGFF 0.5 metadata for the volumes we write: axes, multiscales, pyramid geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NGFF_VERSION = "0.5"
AXES = ("z", "y", "x")


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path, shape, voxel size and NGFF translation (nm)."""

    path: str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float]
    translation_nm: tuple[float, float, float]


def downsampled_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """Shape after one 2x mean downsampling; an odd edge keeps its last voxel (ceil)."""
    z, y, x = ((n + 1) // 2 for n in shape)
    return (z, y, x)


def plan_levels(
    shape: Sequence[int],
    chunk_shape: Sequence[int],
    voxel_size_nm: Sequence[float],
    *,
    max_levels: int | None = None,
    origin_nm: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[Level]:
    """Levels s0, s1, ... halving every axis until the smallest axis fits in one chunk.

    Mean downsampling by 2 puts a level-k voxel centre halfway between the 2^k level-0 voxels it
    averages, so its translation is ``origin + (2^k - 1) / 2 * voxel_size_0`` (NGFF 0.5,
    "coordinateTransformations").
    """
    levels: list[Level] = []
    current = tuple(int(n) for n in shape)
    k = 0
    while True:
        factor = 2**k
        levels.append(
            Level(
                path=f"s{k}",
                shape=current,  # type: ignore[arg-type]
                voxel_size_nm=tuple(float(v) * factor for v in voxel_size_nm),
                translation_nm=tuple(
                    float(o) + (factor - 1) / 2 * float(v)
                    for o, v in zip(origin_nm, voxel_size_nm, strict=True)
                ),
            )
        )
        fits_one_chunk = any(n <= c for n, c in zip(current, chunk_shape, strict=True))
        if fits_one_chunk or (max_levels is not None and len(levels) >= max_levels):
            return levels
        if min(current) <= 1:
            return levels
        current = downsampled_shape(current)
        k += 1


def multiscales_attrs(
    name: str,
    levels: Sequence[Level],
    *,
    method: str = "mean",
    label: bool = False,
    unit: str | None = "nanometer",
) -> dict[str, Any]:
    """The ``ome`` attribute of an image group (NGFF 0.5 on Zarr v3).

    ``method`` names how levels were made: "mean" (ours), "nearest" (labels) or "copied" (the
    archive's own pyramid). ``label`` makes it a labels image of the image two folders up.
    ``unit=None`` (voxel size unknown) leaves the axes without a unit, so the scales (1.0, as
    NGFF requires one) count voxels, not made-up nanometres.
    """
    descriptions = {
        "mean": "2x2x2 mean, integers rounded half up; odd edges averaged over the voxels present",
        "nearest": "2x2x2 subsampling (first voxel), so label values are never mixed",
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
