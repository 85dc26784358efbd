"""Where a volume's files live under the data root, defined once and asked, never re-derived.

    <data_root>/<source>/<source_id>/<name>.ome.zarr     the image (labels inside its labels/)
    <data_root>/<source>/<source_id>/<name>.json         the record sidecar
    <data_root>/<source>/<source_id>/.<name>.journal     the tiles already written

The data root is a folder or an S3 prefix (``emingest.storage``); both are laid out alike.

Hidden names (a leading dot: journals, temp files, caches) are never sidecars.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from emingest.storage import DataRoot, LocalRoot, Location, as_root

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
    """A volume's locations below its data root (a folder or an S3 prefix)."""

    folder: Location
    store: Location
    record: Location
    journal: Location

    @classmethod
    def for_ref(
        cls, data_root: DataRoot | Path | str, ref: _Named, labels_of: _Named | None = None
    ) -> VolumePaths:
        """Where a volume goes; a labels image goes inside its image's ``labels/`` group."""
        root = as_root(data_root)
        folder = root.location(f"{safe_component(ref.source)}/{safe_component(ref.source_id)}")
        name = safe_component(ref.name)
        store = folder / f"{name}{STORE_SUFFIX}"
        if labels_of is not None:
            store = cls.for_ref(root, labels_of).store / "labels" / name
        return cls(
            folder=folder,
            store=store,
            record=folder / f"{name}{RECORD_SUFFIX}",
            journal=folder / f".{name}.journal",
        )


def _is_hidden_or_store(name: str) -> bool:
    return name.startswith(".") or name.endswith(STORE_SUFFIX)


def iter_record_locations(data_root: DataRoot) -> Iterator[Location]:
    """Every record sidecar ``<source>/<source_id>/<name>.json`` of a data root, sorted.

    Three folder listings deep, never a listing of everything: on a bucket the stores hold
    millions of chunk objects. Hidden files and folders (temp files, journals, caches, locks)
    are skipped, and so is every JSON file inside a store (zarr metadata), labels images
    included: their sidecar sits beside the image's own, like any other record.
    """
    sources, _ = data_root.list_dir("")
    for source in sources:
        if _is_hidden_or_store(source):
            continue
        ids, _ = data_root.list_dir(source)
        for source_id in ids:
            if _is_hidden_or_store(source_id):
                continue
            _, names = data_root.list_dir(f"{source}/{source_id}")
            for name in names:
                if name.endswith(RECORD_SUFFIX) and not _is_hidden_or_store(name):
                    yield data_root.location(f"{source}/{source_id}/{name}")


def iter_sidecars(data_root: Path | str) -> Iterator[Path]:
    """Every record sidecar of a local data root (see :func:`iter_record_locations`)."""
    root = Path(data_root)
    if not root.is_dir():
        return
    for location in iter_record_locations(LocalRoot(root)):
        yield location.path


__all__ = [
    "RECORD_SUFFIX",
    "STORE_SUFFIX",
    "VolumePaths",
    "iter_record_locations",
    "iter_sidecars",
    "safe_component",
]
