"""The built-in, weight-free embedder: a 2-D wavelet scattering transform (kymatio).

Scattering coefficients (Mallat; J=3 scales, L=8 orientations, orders 0-2: 217 channels) are
translation-stable, deformation-stable texture descriptors that need no training, so they work
offline from the plain install. Each channel is averaged over the patch and log-compressed
(second-order coefficients span decades), then the vector is centred. Chosen by measurement:
``benchmarks/vectors_quality.py`` (docs/vectors.md has the figures).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from emingest.errors import ConfigError

_VERSION = "1"


class ScatteringEmbedder:
    name = "scattering"
    version = _VERSION

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.size = int(options.pop("size", 64))
        self.J = int(options.pop("J", 3))
        self.L = int(options.pop("L", 8))
        options.pop("weights", None)  # a setting of other embedders
        if options:
            raise ConfigError(f"scattering embedder: unknown options {sorted(options)}")
        if self.size % (1 << self.J):
            raise ConfigError(f"scattering: size {self.size} must be a multiple of 2**J")
        self.patch_shape = (1, self.size, self.size)
        self.dim = 1 + self.J * self.L + self.L * self.L * self.J * (self.J - 1) // 2
        self._local = threading.local()  # kymatio's filter bank object is not shared by threads

    def params(self) -> dict[str, Any]:
        return {"size": self.size, "J": self.J, "L": self.L}

    def _transform(self) -> Any:
        transform = getattr(self._local, "transform", None)
        if transform is None:
            # ``import kymatio.numpy`` fails with SciPy >= 1.17 (kymatio issue 1068); the
            # frontend module itself imports fine.
            from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D

            transform = ScatteringNumPy2D(J=self.J, shape=(self.size, self.size), L=self.L)
            self._local.transform = transform
        return transform

    def embed(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.patch_shape:
            raise ValueError(
                f"scattering: batch must be [n, *{self.patch_shape}], got {batch.shape}"
            )
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        coeffs = self._transform()(batch[:, 0])  # [n, dim, size/2^J, size/2^J]
        pooled = np.log(np.abs(np.asarray(coeffs).mean(axis=(-2, -1))) + 1e-3)
        # every log-coefficient shares a large negative offset that would squeeze all cosine
        # distances near 0; removing each vector's mean keeps the ranking (P@10 0.988 vs 0.986
        # in the benchmark) and spreads the distances
        return (pooled - pooled.mean(axis=1, keepdims=True)).astype(np.float32)
