"""Every embedder passes the shared contract; the registry finds built-ins and names the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from emingest.errors import ConfigError
from emingest.testing.embedders import EmbedderTests
from emingest.vectors import available_embedders, create_embedder
from emingest.vectors.embedders import Embedder


class TestScattering(EmbedderTests):
    def make(self) -> Embedder:
        return create_embedder("scattering")

    def test_dimension_is_that_of_the_transform(self) -> None:
        assert self.make().dim == 217  # 1 + J L + L^2 J (J - 1) / 2 for J 3, L 8
        assert create_embedder("scattering", {"size": 32}).patch_shape == (1, 32, 32)


class TestTorchPatchCNN(EmbedderTests):
    weights: Path | None = None

    def make(self) -> Embedder:
        pytest.importorskip("torch", reason="the torch extra")
        if TestTorchPatchCNN.weights is None:
            import tempfile

            import torch

            from emingest.vectors.torch_model import build_patchcnn, save_patchcnn

            torch.manual_seed(1)
            cfg = {"channels": [4], "dim": 8, "size": 16}
            path = Path(tempfile.mkdtemp()) / "w.pt"
            TestTorchPatchCNN.weights = save_patchcnn(build_patchcnn(cfg), cfg, path)
        return create_embedder("torch", {"weights": str(TestTorchPatchCNN.weights)})


def test_registry_lists_built_ins_and_rejects_unknown_names_and_options() -> None:
    assert {"scattering", "torch"} <= set(available_embedders())
    with pytest.raises(ConfigError, match="known embedders: scattering, torch"):
        create_embedder("clip")
    with pytest.raises(ConfigError, match="unknown options"):
        create_embedder("scattering", {"colour": 1})
    with pytest.raises(ConfigError, match="multiple of 2\\*\\*J"):
        create_embedder("scattering", {"size": 30})
