"""Voxel sizes as the rest of the code may trust them: three finite, positive nanometres.

A value given by the user (``--voxel-size-nm``, ``VolumeJob``) that cannot be true is a
configuration error; one read from a file header is taken for no calibration (None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from emingest.errors import ConfigError

VoxelSize = tuple[float, float, float]


def _problem(value: Sequence[float]) -> str | None:
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return "not numbers"
    if len(values) != 3:
        return f"{len(values)} values, need three (z y x)"
    if not all(math.isfinite(v) for v in values):
        return "not finite"
    if not all(v > 0 for v in values):
        return "not positive"
    return None


def checked_voxel_size(value: Sequence[float] | None, where: str) -> VoxelSize | None:
    """``value`` as three floats, or :class:`ConfigError` naming ``where`` it came from."""
    if value is None:
        return None
    problem = _problem(value)
    if problem is not None:
        shown = " ".join(str(v) for v in value) if isinstance(value, Sequence) else repr(value)
        raise ConfigError(
            f"invalid voxel size {shown} ({where}): {problem}; give three sizes > 0 in "
            "nanometres, z y x"
        )
    z, y, x = (float(v) for v in value)
    return (z, y, x)


def plausible_voxel_size(value: Sequence[float] | None) -> VoxelSize | None:
    """A header's voxel size, or None when it is missing or cannot be true (0, NaN, inf)."""
    if value is None or _problem(value) is not None:
        return None
    z, y, x = (float(v) for v in value)
    return (z, y, x)
