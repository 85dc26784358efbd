"""The checks every embedder passes (like zarr's ``StoreTests``): subclass and set ``make``.

>>> class TestMine(EmbedderTests):                                   # doctest: +SKIP
...     def make(self): return create_embedder("mine", {...})
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from emingest.vectors.embedders import Embedder, embedder_id


class EmbedderTests:
    def make(self) -> Embedder:
        raise NotImplementedError

    def batch(self, embedder: Embedder, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, *embedder.patch_shape)).astype(np.float32)

    def test_follows_the_protocol(self) -> None:
        e = self.make()
        assert isinstance(e, Embedder)
        assert e.name and e.version and e.dim > 0
        assert len(e.patch_shape) == 3 and min(e.patch_shape) >= 1
        json.dumps(e.params())  # JSON-able: it is stored beside every vector
        key = embedder_id(e).key
        assert key == embedder_id(self.make()).key  # stable across instances

    def test_embeds_a_batch_into_finite_float32_rows(self) -> None:
        e = self.make()
        out = np.asarray(e.embed(self.batch(e, 5)))
        assert out.dtype == np.float32 and out.shape == (5, e.dim)
        assert np.isfinite(out).all()

    def test_is_deterministic_and_row_independent(self) -> None:
        e = self.make()
        b = self.batch(e, 6, seed=1)
        whole = np.asarray(e.embed(b))
        again = np.asarray(self.make().embed(b[3:5]))
        np.testing.assert_allclose(whole[3:5], again, rtol=1e-4, atol=1e-5)

    def test_tells_different_patches_apart(self) -> None:
        e = self.make()
        b = self.batch(e, 2, seed=2)
        b[1] = np.sign(b[1]) * 2.0  # a different texture
        out: Any = np.asarray(e.embed(b))
        assert not np.allclose(out[0], out[1])
