"""From voxels to vectors: normalise, cut patches, resize them to the embedder's input, embed.

A :class:`PatchEncoder` is an embedder used on patches of a given physical size and mode; its
:attr:`space` (embedder name, version, parameters, plus mode and patch size) names the vectors
it makes. In 3-D mode a 2-D embedder sees the three orthogonal planes through the patch centre
and the space's vector is their three vectors end to end.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from emingest.vectors.embedders import Embedder, EmbedderId, embedder_id


def normalise(data: np.ndarray, mean: float, std: float) -> np.ndarray:
    """float32 ``(data - mean) / std``: every volume on one scale, whatever its dtype."""
    out = data.astype(np.float32)
    out -= np.float32(mean)
    out /= np.float32(std if std > 0 else 1.0)
    return out


def _resize2d(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if plane.shape == shape:
        return plane
    shrink = plane.shape[0] > shape[0] or plane.shape[1] > shape[1]
    # area averaging when shrinking (no aliasing), bilinear when enlarging
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(plane, (shape[1], shape[0]), interpolation=interp)


def resize_patch(patch: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A float32 (z, y, x) patch resampled to ``shape`` (y-x per plane, then z by nearest)."""
    planes = np.stack([_resize2d(p, shape[1:]) for p in patch])
    if planes.shape[0] != shape[0]:
        idx = np.minimum(
            (np.arange(shape[0]) + 0.5) * planes.shape[0] / shape[0], planes.shape[0] - 1
        )
        planes = planes[idx.astype(int)]
    return np.ascontiguousarray(planes, np.float32)


class PatchEncoder:
    def __init__(self, embedder: Embedder, *, mode: str, patch_nm: float) -> None:
        self.embedder = embedder
        self.mode = mode
        self.patch_nm = float(patch_nm)
        self.planes = mode == "3d" and embedder.patch_shape[0] == 1
        self.dim = embedder.dim * (3 if self.planes else 1)

    @property
    def space(self) -> EmbedderId:
        base = embedder_id(self.embedder)
        params: dict[str, Any] = {**base.params, "mode": self.mode, "patch_nm": self.patch_nm}
        if self.planes:
            params["input"] = "orthogonal-planes"
        return EmbedderId(base.name, base.version, params, self.dim)

    @property
    def input_px(self) -> int:
        return int(self.embedder.patch_shape[-1])

    def encode(self, patches: np.ndarray) -> np.ndarray:
        """``patches``: normalised float32 [n, z, y, x] at the grid's level -> [n, dim]."""
        ez, ey, ex = self.embedder.patch_shape
        shape = (int(ez), int(ey), int(ex))
        if not self.planes:
            batch = (
                np.stack([resize_patch(p, shape) for p in patches])
                if len(patches)
                else (np.zeros((0, *shape), np.float32))
            )
            return np.asarray(self.embedder.embed(batch), np.float32)
        _, pz, py, px = patches.shape
        views = [
            patches[:, pz // 2 : pz // 2 + 1, :, :],  # y-x plane
            patches[:, :, py // 2, :][:, None],  # z-x plane
            patches[:, :, :, px // 2][:, None],  # z-y plane
        ]
        parts = [
            np.asarray(
                self.embedder.embed(np.stack([resize_patch(p, shape) for p in v])), np.float32
            )
            for v in views
        ]
        return np.concatenate(parts, axis=1)


def cut_patches(
    block: np.ndarray,
    patch_px: tuple[int, int, int],
    stride_px: tuple[int, int, int],
    rows: int,
    cols: int,
) -> np.ndarray:
    """The [rows * cols, pz, py, px] patches of a block read by ``PatchGrid.block_region``."""
    pz, py, px = patch_px
    out = np.empty((rows * cols, pz, py, px), block.dtype)
    for r in range(rows):
        for c in range(cols):
            y0, x0 = r * stride_px[1], c * stride_px[2]
            out[r * cols + c] = block[:pz, y0 : y0 + py, x0 : x0 + px]
    return out
