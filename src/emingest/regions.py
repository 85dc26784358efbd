"""Regions and boxes (what they are, how they are written and parsed) and region arithmetic:
tiles aligned to write blocks, sized to a memory budget, in C order.

A leaf module: it imports nothing of emingest, so formats, sources, the pipeline and the
command line all share one definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from emingest.errors import ConfigError

Region = tuple[slice, slice, slice]
"""A box in z, y, x voxel coordinates, half-open, steps of 1."""

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
"""(start, stop) per axis, z, y, x, half-open; a stop of -1 means "to the edge" where allowed."""

OPEN_END = -1


def parse_box(
    value: str | Sequence[Any] | None, *, flag: str = "--box", open_ends: bool = False
) -> Box | None:
    """``"z0:z1,y0:y1,x0:x1"`` or three (start, stop) pairs / slices; None or "" is None.

    ``open_ends``: an empty bound means the edge (start 0, stop :data:`OPEN_END`, resolved
    later against the shape). Errors name ``flag``, the option the user typed.
    """
    if value is None or value == "":
        return None
    parts: list[Any] = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 3:
        raise ConfigError(f"{flag} {value!r}: give three ranges z0:z1,y0:y1,x0:x1")
    box = []
    for part in parts:
        try:
            if isinstance(part, slice):
                lo, hi = part.start, part.stop
            elif isinstance(part, str):
                if part.count(":") != 1:
                    raise ValueError(part)
                lo, hi = (p.strip() or None for p in part.split(":"))
            else:
                lo, hi = part
            if not open_ends and (lo is None or hi is None):
                raise ValueError(part)
            start = 0 if lo is None else int(lo)
            stop = OPEN_END if hi is None else int(hi)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{flag} {value!r}: {part!r} is not start:stop") from err
        if start < 0 or (stop != OPEN_END and stop <= start) or (stop < 0 and not open_ends):
            raise ConfigError(f"{flag} {value!r}: {part!r} must satisfy 0 <= start < stop")
        box.append((start, stop))
    return (box[0], box[1], box[2])


def format_box(box: Sequence[tuple[int, int]]) -> str:
    """``"z0:z1,y0:y1,x0:x1"``, the form :func:`parse_box` reads."""
    return ",".join(f"{a}:{b}" for a, b in box)


def box_region(box: Box) -> Region:
    return (slice(*box[0]), slice(*box[1]), slice(*box[2]))


def region_box(region: Region) -> Box:
    z, y, x = ((int(s.start), int(s.stop)) for s in region)
    return (z, y, x)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def choose_tile(
    shape: Sequence[int], align: Sequence[int], itemsize: int, budget_bytes: int
) -> tuple[int, int, int]:
    """The largest tile (multiples of ``align``, clipped to ``shape`` rounded up to ``align``)
    that holds at most ``budget_bytes``, growing x first, then y, then z (so tiles are long
    contiguous rows of the input). Never smaller than one ``align`` block."""
    full = [_ceil_div(max(n, 1), a) * a for n, a in zip(shape, align, strict=True)]
    tile = list(align)
    for axis in (2, 1, 0):
        others = itemsize
        for i, t in enumerate(tile):
            if i != axis:
                others *= t
        fit = max(align[axis], (budget_bytes // max(others, 1)) // align[axis] * align[axis])
        tile[axis] = min(full[axis], fit)
    return (tile[0], tile[1], tile[2])


def iter_tiles(
    shape: Sequence[int], tile: Sequence[int]
) -> Iterator[tuple[tuple[int, ...], Region]]:
    """(index, region) of every tile covering ``shape``, in C order; edge tiles are clipped."""
    counts = [_ceil_div(n, t) for n, t in zip(shape, tile, strict=True)]
    for i in range(counts[0]):
        for j in range(counts[1]):
            for k in range(counts[2]):
                idx = (i, j, k)
                region = tuple(
                    slice(n * t, min((n + 1) * t, s))
                    for n, t, s in zip(idx, tile, shape, strict=True)
                )
                yield idx, region  # type: ignore[misc]


def coarser_region(
    region: Region, shape_coarse: Sequence[int], factor: Sequence[int] = (2, 2, 2)
) -> Region:
    """The region of the next level that downsampling ``region`` by ``factor`` covers (starts
    are multiples of the factor by construction: tiles are aligned to block x factor)."""
    return tuple(  # type: ignore[return-value]
        slice(s.start // f, min(_ceil_div(s.stop, f), n))
        for s, n, f in zip(region, shape_coarse, factor, strict=True)
    )


def finer_region(
    region: Region, shape_fine: Sequence[int], factor: Sequence[int] = (2, 2, 2)
) -> Region:
    """The footprint in the level below of a region downsampled by ``factor``."""
    return tuple(  # type: ignore[return-value]
        slice(s.start * f, min(s.stop * f, n))
        for s, n, f in zip(region, shape_fine, factor, strict=True)
    )


def half_region(region: Region, shape_half: Sequence[int]) -> Region:
    """:func:`coarser_region` by 2 on every axis."""
    return coarser_region(region, shape_half, (2, 2, 2))


def double_region(region: Region, shape_full: Sequence[int]) -> Region:
    """:func:`finer_region` by 2 on every axis."""
    return finer_region(region, shape_full, (2, 2, 2))


def plane_bands(shape: Sequence[int], itemsize: int, budget_bytes: int) -> Iterator[Region]:
    """Regions that cover ``shape`` in C order, each within ``budget_bytes`` where possible:
    groups of whole planes, or bands of whole rows when one plane is larger than the budget."""
    nz, ny, nx = shape
    plane = ny * nx * itemsize
    if plane <= budget_bytes:
        step = max(1, budget_bytes // max(plane, 1))
        for z in range(0, nz, step):
            yield (slice(z, min(z + step, nz)), slice(0, ny), slice(0, nx))
        return
    rows = max(1, budget_bytes // max(nx * itemsize, 1))
    for z in range(nz):
        for y in range(0, ny, rows):
            yield (slice(z, z + 1), slice(y, min(y + rows, ny)), slice(0, nx))


def region_nbytes(region: Region, itemsize: int) -> int:
    n = itemsize
    for s in region:
        n *= s.stop - s.start
    return n


def format_region(region: Sequence[slice]) -> str:
    """``"z0:z1,y0:y1,x0:x1"``: a region written as a box."""
    return format_box([(s.start, s.stop) for s in region])
