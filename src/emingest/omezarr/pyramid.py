"""2x mean downsampling that is fast on two cores.

``reshape().mean()`` (and skimage, dask.coarsen) run at 113-195 MB/s here, a bottleneck on its
own; pairwise strided adds in a small integer type run at >3 GB/s (performance.md). So we add
the eight neighbours with strided views in the narrowest type that cannot overflow.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


def _accumulator(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind in "ui":
        if dtype.itemsize <= 1:
            return np.dtype(np.uint16 if dtype.kind == "u" else np.int16)
        if dtype.itemsize == 2:
            return np.dtype(np.uint32 if dtype.kind == "u" else np.int32)
        return np.dtype(np.float64)  # 32/64-bit ints: sums of 8 may not fit; round below
    if dtype.kind == "f":
        return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)
    raise TypeError(f"cannot downsample dtype {dtype}")


def _pad_even(a: np.ndarray) -> np.ndarray:
    """Repeat the last plane/row/column of odd axes, so an odd edge averages what it has."""
    pads = [(0, n % 2) for n in a.shape]
    if not any(p for _, p in pads):
        return a
    return np.pad(a, pads, mode="edge")


def downsample_mean2(block: np.ndarray) -> np.ndarray:
    """Mean over 2x2x2 neighbourhoods; output shape ``ceil(n / 2)`` per axis, same dtype.

    Integers are rounded half up (``(sum + 4) // 8``) so a constant block stays constant.
    """
    if block.ndim != 3:
        raise ValueError(f"expected a 3-D block, got shape {block.shape}")
    a = _pad_even(block)
    acc = _accumulator(a.dtype)
    z, y, x = (n // 2 for n in a.shape)
    # Sums go into per-thread scratch reused from call to call: fresh pages cost more here
    # than the adds themselves (performance.md); ``dtype=`` casts inside the ufunc's buffer.
    s = _scratch(0, (z, 2 * y, 2 * x), acc)
    np.add(a[0::2], a[1::2], out=s, dtype=acc)
    t = _scratch(1, (z, y, 2 * x), acc)
    np.add(s[:, 0::2], s[:, 1::2], out=t)
    u = _scratch(2, (z, y, x), acc)
    np.add(t[:, :, 0::2], t[:, :, 1::2], out=u)
    if block.dtype.kind in "uib":
        if acc.kind == "f":
            u /= 8
            u += 0.5
            np.floor(u, out=u)
        else:
            u += 4
            u >>= 3  # floor division by 8 (arithmetic shift for signed), but cheaper
        return u.astype(block.dtype)
    u /= 8
    return u.astype(block.dtype)


_local = threading.local()


def _scratch(slot: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A reused per-thread array of ``shape``; valid until this thread's next call."""
    n = int(np.prod(shape)) * dtype.itemsize
    buffers = _local.__dict__.setdefault("buffers", {})
    flat = buffers.get(slot)
    if flat is None or flat.size < n:
        flat = buffers[slot] = np.empty(n, np.uint8)
    return flat[:n].view(dtype).reshape(shape)


def downsample_nearest2(block: np.ndarray) -> np.ndarray:
    """Every second voxel per axis (output ``ceil(n / 2)``): the pyramid of a labels image."""
    return np.ascontiguousarray(block[0::2, 0::2, 0::2])
