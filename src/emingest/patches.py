"""Random patches at a physical scale, labels aligned: the sampling behind
``emingest.torch.PatchDataset``, usable without torch.

Conventions follow torch-em's ``SegmentationDataset`` (a random box per item, ``n_samples``
items, raw / label / joint transforms, open handles dropped when pickled so that DataLoader
workers reopen their stores) and cellmap-data (a patch asked for in nanometres at a scale in
nanometres, the pyramid level chosen to match). Item ``i`` depends only on ``(seed, i)``, so a
dataset gives the same patches with any number of workers, in any order.

>>> from emingest.patches import PatchSampler
>>> s = PatchSampler(["epfl/ca1-hippocampus/training"], patch_shape=(8, 32, 32),
...                  with_labels=True, n_samples=100, seed=1)            # doctest: +SKIP
>>> p = s[0]; p.raw.shape, p.labels.shape                                # doctest: +SKIP
((8, 32, 32), (8, 32, 32))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emingest.errors import ConfigError

if TYPE_CHECKING:
    from emingest.config import Settings
    from emingest.volume import Volume


@dataclass
class Patch:
    raw: np.ndarray
    labels: np.ndarray | None
    record_id: str
    level: int
    corner: tuple[int, int, int]
    """z, y, x of the patch's first voxel at ``level``."""


def choose_level(volume: Volume, scale_nm: float | Sequence[float]) -> int:
    """The level whose voxel size is closest to ``scale_nm`` (log distance, every axis)."""
    target = _three(scale_nm, "scale_nm")
    best, best_cost = 0, math.inf
    for info in volume.levels:
        vox = info.voxel_size_nm
        if vox is None:
            raise ConfigError(f"{volume.id} has no voxel size; ask a level, not scale_nm")
        cost = sum(abs(math.log(v / t)) for v, t in zip(vox, target, strict=True))
        if cost < best_cost - 1e-9:
            best, best_cost = info.index, cost
    return best


def _three(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return (float(value),) * 3
    out = tuple(float(v) for v in value)
    if len(out) != 3 or min(out) <= 0:
        raise ConfigError(f"{name}: one positive number or three (z, y, x), got {value!r}")
    return out


@dataclass
class _Source:
    volume: Volume
    labels: Volume | None
    level: int
    patch: tuple[int, int, int]


class PatchSampler:
    """``n_samples`` random patches from volumes named by ids (or catalog filters).

    Give the patch size as ``patch_shape`` (voxels) or ``patch_nm``, and the scale as ``level``
    or ``scale_nm`` (the nearest pyramid level of each volume). ``with_labels`` reads the same
    box of the volume's labels image (``labels_name``, else its first) and leaves out volumes
    without one.
    """

    def __init__(
        self,
        ids: Sequence[str] | None = None,
        *,
        filters: dict[str, Any] | None = None,
        patch_shape: Sequence[int] | None = None,
        patch_nm: float | Sequence[float] | None = None,
        level: int | None = None,
        scale_nm: float | Sequence[float] | None = None,
        with_labels: bool = False,
        labels_name: str | None = None,
        n_samples: int = 1000,
        seed: int = 0,
        raw_transform: Callable[[np.ndarray], np.ndarray] | None = None,
        label_transform: Callable[[np.ndarray], np.ndarray] | None = None,
        transform: Callable[[np.ndarray, np.ndarray | None], tuple[Any, Any]] | None = None,
        settings: Settings | None = None,
        data_root: str | Path | None = None,
    ) -> None:
        from emingest.volume import find_records, local_settings, open_volume

        if (patch_shape is None) == (patch_nm is None):
            raise ConfigError("give exactly one of patch_shape (voxels) and patch_nm")
        if level is not None and scale_nm is not None:
            raise ConfigError("give level or scale_nm, not both")
        if n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
        settings = local_settings(settings, data_root)
        if ids is None:
            rows = find_records(settings=settings, status="complete", **(filters or {}))
            ids = [
                r.id for r in rows if "labels_of" not in (r.record.get("additional_metadata") or {})
            ]
        if not ids:
            raise ConfigError("no volumes: give ids or filters that match complete records")
        self.n_samples = n_samples
        self.seed = seed
        self.with_labels = with_labels
        self.raw_transform = raw_transform
        self.label_transform = label_transform
        self.transform = transform
        self.sources: list[_Source] = []
        skipped = []
        for rid in ids:
            vol = open_volume(rid, settings=settings)
            lv = level if level is not None else (choose_level(vol, scale_nm) if scale_nm else 0)
            info = vol.level(lv)
            if patch_shape is not None:
                patch = tuple(int(p) for p in patch_shape)
            else:
                vox = info.voxel_size_nm
                if vox is None:
                    raise ConfigError(f"{rid} has no voxel size; give patch_shape in voxels")
                want = _three(patch_nm, "patch_nm")  # type: ignore[arg-type]
                patch = tuple(max(1, round(w / v)) for w, v in zip(want, vox, strict=True))
            if len(patch) != 3 or min(patch) < 1:
                raise ConfigError(f"patch_shape needs three positive sizes z y x, got {patch}")
            labels = None
            if with_labels:
                found = vol.labels
                if not found:
                    skipped.append(f"{rid} (no labels)")
                    continue
                labels = found[labels_name] if labels_name in found else found[sorted(found)[0]]
                if labels.level(lv).shape != info.shape:
                    raise ConfigError(
                        f"{labels.id} level {lv} has shape {labels.level(lv).shape}, its image "
                        f"{info.shape}: labels must share the image's grid"
                    )
            if any(p > n for p, n in zip(patch, info.shape, strict=True)):
                skipped.append(f"{rid} (level {lv} is {info.shape}, smaller than {patch})")
                continue
            self.sources.append(_Source(vol, labels, lv, patch))
        if not self.sources:
            raise ConfigError(f"no volume fits: {'; '.join(skipped)}")
        self.skipped = skipped
        # Volumes are drawn in proportion to their number of patch positions, so every voxel
        # is about equally likely to be seen, as with one big volume.
        counts = np.array(
            [
                float(
                    np.prod(
                        [
                            n - p + 1
                            for n, p in zip(s.volume.level(s.level).shape, s.patch, strict=True)
                        ]
                    )
                )
                for s in self.sources
            ]
        )
        self._weights = counts / counts.sum()

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, index: int) -> Patch:
        if not 0 <= index < self.n_samples:
            raise IndexError(f"index {index} outside 0..{self.n_samples - 1}")
        rng = np.random.default_rng([self.seed, index])
        src = self.sources[int(rng.choice(len(self.sources), p=self._weights))]
        shape = src.volume.level(src.level).shape
        corner = tuple(
            int(rng.integers(0, n - p + 1)) for n, p in zip(shape, src.patch, strict=True)
        )
        box = tuple(slice(c, c + p) for c, p in zip(corner, src.patch, strict=True))
        raw = src.volume.read(box, src.level)
        labels = src.labels.read(box, src.level) if src.labels is not None else None
        if self.raw_transform is not None:
            raw = self.raw_transform(raw)
        if labels is not None and self.label_transform is not None:
            labels = self.label_transform(labels)
        if self.transform is not None:
            raw, labels = self.transform(raw, labels)
        return Patch(raw, labels, src.volume.id, src.level, corner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Patch]:
        """Every item in order: the numpy iterator (no torch needed)."""
        for i in range(self.n_samples):
            yield self[i]


def iter_patches(ids: Sequence[str] | None = None, **kw: Any) -> Iterator[Patch]:
    """``PatchSampler(ids, **kw)``'s patches, one after another."""
    yield from PatchSampler(ids, **kw)
