"""Where a volume's files live under the data root, defined once and asked, never re-derived.

    <data_root>/<source>/<source_id>/<name>.ome.zarr     the image (labels inside its labels/)
    <data_root>/<source>/<source_id>/<name>.json         the record sidecar
    <data_root>/<source>/<source_id>/.<name>.journal     the tiles already written

Hidden names (a leading dot: journals, temp files, caches) are never sidecars.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
STORE_SUFFIX = ".ome.zarr"
RECORD_SUFFIX = ".json"


def safe_component(name: str) -> str:
    """A folder/file name that stays inside its parent, whatever the source called it."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    return cleaned[:200]


class _Named(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class VolumePaths:
    folder: Path
    store: Path
    record: Path
    journal: Path

    @classmethod
    def for_ref(cls, data_root: Path, ref: _Named, labels_of: _Named | None = None) -> VolumePaths:
        """Where a volume goes; a labels image goes inside its image's ``labels/`` group."""
        folder = Path(data_root) / safe_component(ref.source) / safe_component(ref.source_id)
        name = safe_component(ref.name)
        store = folder / f"{name}{STORE_SUFFIX}"
        if labels_of is not None:
            store = cls.for_ref(data_root, labels_of).store / "labels" / name
        return cls(
            folder=folder,
            store=store,
            record=folder / f"{name}{RECORD_SUFFIX}",
            journal=folder / f".{name}.journal",
        )


def iter_sidecars(data_root: Path | str) -> Iterator[Path]:
    """Every record sidecar ``<data_root>/<source>/<source_id>/<name>.json``, sorted.

    Hidden files and folders (temp files, journals, caches) are skipped, and so is every JSON
    file inside a store (zarr metadata), labels images included: their sidecar sits beside the
    image's own, like any other record.
    """
    root = Path(data_root)
    if not root.is_dir():
        return
    for path in sorted(root.glob(f"*/*/*{RECORD_SUFFIX}")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p.endswith(STORE_SUFFIX) for p in parts):
            continue
        if path.is_file():
            yield path


__all__ = ["RECORD_SUFFIX", "STORE_SUFFIX", "VolumePaths", "iter_sidecars", "safe_component"]
