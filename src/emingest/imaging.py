"""Images for people: contrast windows from a record's statistics, 8-bit planes, thumbnails, PNG.

The window is the 0.5-99.5 % range of the record's exact histogram (whole volume, level 0), so
every plane and every level of a volume is shown with the same contrast.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from emingest.errors import ConversionError


def contrast_window(record: Any, low: float = 0.005, high: float = 0.995) -> tuple[float, float]:
    """(vmin, vmax) from the record's histogram quantiles; the dtype's range without one."""
    stats = getattr(record, "statistics", None)
    if stats is not None:
        counts = np.asarray(stats.histogram.counts, dtype=np.float64)
        edges = np.asarray(stats.histogram.bin_edges, dtype=np.float64)
        total = counts.sum()
        if total > 0 and len(edges) == len(counts) + 1:
            cdf = np.cumsum(counts) / total
            lo = float(edges[int(np.searchsorted(cdf, low))])
            hi = float(edges[min(int(np.searchsorted(cdf, high)) + 1, len(edges) - 1)])
            if hi > lo:
                return lo, hi
        if stats.max > stats.min:
            return float(stats.min), float(stats.max)
    dtype = np.dtype(getattr(record, "dtype", None) or "uint8")
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def to_uint8(plane: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``window`` linearly onto 0..255 (clipped)."""
    lo, hi = window
    if plane.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
        return plane
    scale = 255.0 / max(hi - lo, 1e-12)
    out = (plane.astype(np.float32) - np.float32(lo)) * np.float32(scale)
    return np.clip(out, 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a 2-D uint8 or uint16 image (fast: compression level 1)."""
    if image.ndim != 2:
        raise ConversionError(f"a PNG needs a 2-D plane, got shape {image.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - cv2 fails only on unsupported dtypes, excluded above
        raise ConversionError(f"could not encode a {image.dtype} plane as PNG")
    return bytes(buf)


def fit_size(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(height, width) with the longest side ``size`` and the aspect ratio kept."""
    h, w = shape
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def thumbnail_of(volume: Any, size: int = 256) -> np.ndarray:
    """The middle z plane of the coarsest level still at least ``size`` wide, as uint8."""
    level = 0
    for info in volume.levels:
        if max(info.shape[1:]) >= size:
            level = info.index
    info = volume.level(level)
    z = info.shape[0] // 2
    plane = volume.read((z, None, None), level)[0]
    image = to_uint8(plane, contrast_window(volume.record))
    h, w = fit_size(image.shape, size)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
