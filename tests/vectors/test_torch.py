"""The learned-model path: a tiny PatchCNN the test builds and saves, used through --weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emingest.config import Settings
from emingest.errors import ConfigError
from emingest.vectors import embed_records, make_encoder, search_like

from .conftest import Textured

torch = pytest.importorskip("torch", reason="the torch extra")


def tiny_weights(path: Path) -> tuple[Path, object]:
    from emingest.vectors.torch_model import build_patchcnn, save_patchcnn

    torch.manual_seed(0)
    # 48 px: a 512 nm patch is read at level 0 (8 nm is nearer 10.7 nm than level 1's 16 nm)
    # and shrunk from 64 to 48 px
    config = {"channels": [4, 8], "dim": 16, "size": 48}
    model = build_patchcnn(config)
    return save_patchcnn(model, config, path), model


def test_weights_file_embeds_into_its_own_space(isolated: Settings, textured: Textured) -> None:
    weights, model = tiny_weights(isolated.catalog.db_path.parent / "tiny.pt")  # type: ignore[union-attr]
    settings = isolated.model_copy(deep=True)
    settings.embed.models = ["torch"]
    settings.embed.weights = weights
    encoder = make_encoder(settings)
    assert encoder.dim == 16 and encoder.embedder.patch_shape == (1, 48, 48)
    assert encoder.space.key != make_encoder(isolated).space.key  # never compared with scattering
    [result] = embed_records(settings, [textured.record_id])
    assert result.status == "embedded" and result.patches == 240
    # a stored vector is the model's output on the patch, shrunk from 64 to 48 px
    hits = search_like(settings, textured.record_id, (2, 96, 160), k=3)
    assert hits[0].center_zyx == (2, 96, 160) and hits[0].distance == pytest.approx(0, abs=1e-5)
    assert {h.model for h in hits} == {encoder.space.key}
    patch = textured.volume[2, 64:128, 128:192].astype(np.float32)
    import cv2

    from emingest.vectors.embed import volume_normalisation
    from emingest.vectors.search import patch_vector

    vec, _ = patch_vector(settings, textured.record_id, (2, 96, 160))
    mean, std = volume_normalisation(_record(settings, textured.record_id))
    small = cv2.resize((patch - mean) / std, (48, 48), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        expected = model(torch.from_numpy(small[None, None])).numpy()[0]  # type: ignore[operator]
    np.testing.assert_allclose(vec, expected, rtol=1e-4, atol=1e-5)


def _record(settings: Settings, rid: str):
    from emingest.catalog import open_catalog
    from emingest.records import VolumeRecord

    with open_catalog(settings) as cat:
        row = cat.get(rid)
    assert row is not None
    return VolumeRecord.model_validate(row.record)


def test_bad_weights_are_clear_errors(tmp_path: Path) -> None:
    from emingest.vectors import create_embedder

    with pytest.raises(ConfigError, match="needs a weights file"):
        create_embedder("torch", {})
    with pytest.raises(ConfigError, match="not found"):
        create_embedder("torch", {"weights": str(tmp_path / "none.pt")})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="neither a PatchCNN checkpoint nor a TorchScript"):
        create_embedder("torch", {"weights": str(junk)})


def test_without_torch_the_error_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from emingest.vectors import create_embedder\n"
        f"create_embedder('torch', {{'weights': {str(tmp_path)!r}}})\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 1
    assert "pip install 'emingest[torch]'" in res.stderr.splitlines()[-1]
