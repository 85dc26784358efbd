"""What a local decoder returns: a region reader plus the metadata its header carried."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emingest.sources.base import Region


def check_region(region: Region, shape: tuple[int, int, int]) -> None:
    for s, n in zip(region, shape, strict=True):
        if s.step not in (None, 1) or not 0 <= s.start <= s.stop <= n:
            raise ValueError(f"region {region} is outside shape {shape}")


def native(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy in native byte order (values unchanged: never a silent cast)."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


@dataclass
class FileVolume:
    """A decoded local file: region reads plus header metadata, in z, y, x and nanometres."""

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]
    voxel_size_nm: tuple[float, float, float] | None
    voxel_size_origin: str
    format: str
    header: dict[str, Any] = field(default_factory=dict)

    def read(self, region: Region) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass
