"""Pyramid downsampling: mean for images, mode for labels, by 1 or 2 per axis.

Mean downsampling must be fast on two cores.

``reshape().mean()`` (and skimage, dask.coarsen) run at 113-195 MB/s here, a bottleneck on its
own; pairwise strided adds in a small integer type run at >3 GB/s (performance.md). So we add
the eight neighbours with strided views in the narrowest type that cannot overflow.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
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


def _pad_even(a: np.ndarray, factor: Sequence[int] = (2, 2, 2)) -> np.ndarray:
    """Repeat the last plane/row/column of odd axes that are halved, so an odd edge averages
    (or votes among) the voxels it has: every voxel present is counted equally often."""
    pads = [(0, n % 2 if f == 2 else 0) for n, f in zip(a.shape, factor, strict=True)]
    if not any(p for _, p in pads):
        return a
    return np.pad(a, pads, mode="edge")


def _check(block: np.ndarray, factor: Sequence[int]) -> tuple[int, int, int]:
    if block.ndim != 3:
        raise ValueError(f"expected a 3-D block, got shape {block.shape}")
    f = tuple(int(v) for v in factor)
    if len(f) != 3 or any(v not in (1, 2) for v in f):
        raise ValueError(f"factors must be 1 or 2 per axis, got {factor}")
    return (f[0], f[1], f[2])


def downsample_mean(block: np.ndarray, factor: Sequence[int] = (2, 2, 2)) -> np.ndarray:
    """Mean over blocks of ``factor`` voxels (1 or 2 per axis); output ``ceil(n / f)`` per
    axis, same dtype. Integers are rounded half up (``(sum + n/2) // n``), so a constant block
    stays constant."""
    f = _check(block, factor)
    if f == (1, 1, 1):
        return block.copy()
    a = _pad_even(block, f)
    acc = _accumulator(a.dtype)
    # Pairwise adds along each halved axis; sums go into per-thread scratch reused from call
    # to call: fresh pages cost more here than the adds themselves (performance.md), and
    # ``dtype=`` casts inside the ufunc's buffer.
    s = a
    for slot, axis in enumerate(i for i in range(3) if f[i] == 2):
        even = [slice(None)] * 3
        odd = [slice(None)] * 3
        even[axis] = slice(0, None, 2)
        odd[axis] = slice(1, None, 2)
        shape = list(s.shape)
        shape[axis] //= 2
        out = _scratch(slot, tuple(shape), acc)
        np.add(s[tuple(even)], s[tuple(odd)], out=out, dtype=acc)
        s = out
    u = s
    shift = sum(1 for v in f if v == 2)  # the block holds 2**shift voxels
    if block.dtype.kind in "uib":
        if acc.kind == "f":
            u /= 1 << shift
            u += 0.5
            np.floor(u, out=u)
        else:
            u += 1 << (shift - 1)
            u >>= shift  # floor division (arithmetic shift for signed), but cheaper
        return u.astype(block.dtype)
    u /= 1 << shift
    return u.astype(block.dtype)


def downsample_mean2(block: np.ndarray) -> np.ndarray:
    """Mean over 2x2x2 neighbourhoods (:func:`downsample_mean` with factor 2 on every axis)."""
    return downsample_mean(block, (2, 2, 2))


_local = threading.local()


def _scratch(slot: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A reused per-thread array of ``shape``; valid until this thread's next call."""
    n = int(np.prod(shape)) * dtype.itemsize
    buffers = _local.__dict__.setdefault("buffers", {})
    flat = buffers.get(slot)
    if flat is None or flat.size < n:
        flat = buffers[slot] = np.empty(n, np.uint8)
    return flat[:n].view(dtype).reshape(shape)


def downsample_mode(block: np.ndarray, factor: Sequence[int] = (2, 2, 2)) -> np.ndarray:
    """The most frequent value of each block of ``factor`` voxels, ties to the smaller value:
    the pyramid of a labels image (values are never mixed). Same output shape as
    :func:`downsample_mean`, so a labels level has exactly its image level's geometry. An odd
    edge votes among the voxels it has (edge padding counts each of them equally often)."""
    f = _check(block, factor)
    if f == (1, 1, 1):
        return block.copy()
    a = _pad_even(block, f)
    # One strided view per position in the block (no copies): views[k][i] is vote k of
    # output voxel i.
    views = [
        a[dz :: f[0], dy :: f[1], dx :: f[2]]
        for dz in range(f[0])
        for dy in range(f[1])
        for dx in range(f[2])
    ]
    out = np.array(views[0], copy=True)
    same = np.ones(out.shape, bool)
    for v in views[1:]:
        same &= v == views[0]
    # Most blocks of a labels image hold one label: only the others are voted on.
    mixed = np.nonzero(~same)
    if mixed[0].size:
        out[mixed] = _vote(np.stack([v[mixed] for v in views], axis=1))
    return out


def _vote(votes: np.ndarray) -> np.ndarray:
    """Per row of ``votes`` (m x n, n <= 8): the most frequent value, ties to the smaller."""
    n = votes.shape[1]
    counts = np.zeros(votes.shape, np.uint8)
    for j in range(n):
        counts += votes == votes[:, j : j + 1]
    best = counts.max(axis=1, keepdims=True)
    # among the values with the highest count, the smallest: others are masked by the row max
    masked = np.where(counts == best, votes, votes.max(axis=1, keepdims=True))
    return masked.min(axis=1)
