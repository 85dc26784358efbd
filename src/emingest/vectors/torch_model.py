"""A learned embedder: a PyTorch model from a local weights file (needs the ``torch`` extra).

No model hub is reachable from many clusters, so weights come as a file (``--weights PATH``,
``[embed] weights``). Two kinds are read:

- a checkpoint of :class:`PatchCNN`, written by :func:`save_patchcnn` (``torch.save`` of
  ``{"architecture": "patchcnn", "config": {...}, "state_dict": ...}``), loaded with
  ``weights_only=True`` (no pickled code runs);
- a TorchScript module (``torch.jit.save``) taking float32 [n, 1, size, size] and returning
  [n, d]; its input ``size`` is an option (default 64).

The space key includes the file's sha256, so vectors of two weight files are never compared.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emingest.errors import ConfigError

_VERSION = "1"


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ConfigError(
            "the torch embedder needs the torch extra: pip install 'emingest[torch]'"
        ) from err
    return torch


def build_patchcnn(config: dict[str, Any]) -> Any:
    """A small 2-D CNN: (conv 3x3, ReLU, 2x max-pool) per entry of ``channels``, global average
    pooling, then a linear layer to ``dim``. Input [n, 1, size, size]."""
    torch = _torch()
    nn = torch.nn
    layers: list[Any] = []
    c_in = 1
    for c in config.get("channels", [16, 32, 64]):
        layers += [nn.Conv2d(c_in, int(c), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = int(c)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, int(config.get("dim", 64)))]
    return nn.Sequential(*layers)


def save_patchcnn(model: Any, config: dict[str, Any], path: Path | str) -> Path:
    """Write a :func:`build_patchcnn` model as a weights file this embedder reads."""
    torch = _torch()
    path = Path(path)
    torch.save(
        {"architecture": "patchcnn", "config": config, "state_dict": model.state_dict()}, path
    )
    return path


class TorchEmbedder:
    name = "torch"
    version = _VERSION

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        weights = options.pop("weights", None)
        size = int(options.pop("size", 64))
        if options:
            raise ConfigError(f"torch embedder: unknown options {sorted(options)}")
        if not weights:
            raise ConfigError("the torch embedder needs a weights file: --weights PATH")
        torch = _torch()
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"weights file not found: {path}")
        self.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self._lock = threading.Lock()  # one forward pass at a time: torch threads inside
        self._config: dict[str, Any] = {}
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - not a checkpoint: try TorchScript below
            checkpoint = None
        if isinstance(checkpoint, dict) and checkpoint.get("architecture") == "patchcnn":
            self._config = dict(checkpoint.get("config") or {})
            self.model = build_patchcnn(self._config)
            try:
                self.model.load_state_dict(checkpoint["state_dict"])
            except (RuntimeError, KeyError) as err:
                raise ConfigError(f"{path}: weights do not fit a PatchCNN: {err}") from err
            size = int(self._config.get("size", size))
            self.architecture = "patchcnn"
        else:
            try:
                self.model = torch.jit.load(str(path), map_location="cpu")
            except Exception as err:
                raise ConfigError(
                    f"{path}: neither a PatchCNN checkpoint nor a TorchScript module: {err}"
                ) from err
            self.architecture = "torchscript"
        self.model.eval()
        self.patch_shape = (1, size, size)
        with torch.no_grad():
            probe = self.model(torch.zeros((1, 1, size, size), dtype=torch.float32))
        if probe.ndim != 2:
            raise ConfigError(f"{path}: the model must return [n, d], got {tuple(probe.shape)}")
        self.dim = int(probe.shape[1])

    def params(self) -> dict[str, Any]:
        return {
            "weights_sha256": self.weights_sha256,
            "architecture": self.architecture,
            "config": self._config,
            "size": self.patch_shape[-1],
        }

    def embed(self, batch: np.ndarray) -> np.ndarray:
        torch = _torch()
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        with self._lock, torch.no_grad():
            out = self.model(x)
        return out.numpy().astype(np.float32, copy=False)
