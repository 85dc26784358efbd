"""The reader contract: random access to one volume's voxels, with defaults for the optional
parts. Formats (local decoders) and sources (archives) both implement it, so it lives below
both; :mod:`emingest.sources.base` re-exports it as part of the source contract.

Implementations subclass :class:`VolumeReader` explicitly to inherit the defaults.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from emingest.regions import Region


@runtime_checkable
class VolumeReader(Protocol):
    """Random access to one volume's voxels. Must be safe to call from several threads."""

    shape: tuple[int, int, int]
    dtype: np.dtype[Any]

    digest_from_store: bool = False
    """True when reading again is expensive (a remote archive): the pipeline then computes the
    digest from the level 0 it has just written instead of reading the source a second time."""

    def read(self, region: Region) -> np.ndarray:
        """Voxels of ``region`` as a C-contiguous native-byte-order array of ``dtype``."""
        ...

    def read_into(self, region: Region, out: np.ndarray) -> np.ndarray:
        """The voxels of ``region``, read into ``out`` (C-contiguous, the shape of ``region``,
        reused from region to region) when the reader can: fresh pages cost ~0.5 GB/s here.
        The default returns :meth:`read`'s new array and leaves ``out`` untouched (so its
        pages are never touched either and cost no memory)."""
        return self.read(region)

    def close(self) -> None:
        """Release files and connections (default: nothing to release)."""
        return None


class PyramidReader(VolumeReader, Protocol):
    """A reader of a source that has its own pyramid (``VolumeInfo.levels``)."""

    def read_level(self, level: int, region: Region) -> np.ndarray: ...


__all__ = ["PyramidReader", "VolumeReader"]
