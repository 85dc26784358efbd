"""Local volumes: TIFF / OME-TIFF / ImageJ TIFF, MRC, a folder or glob of 2-D images, Zarr."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from emingest.config import Settings
from emingest.formats import open_volume
from emingest.formats.base import FileVolume
from emingest.formats.limits import DecodeLimits
from emingest.sources.base import SourceSettings, VolumeInfo, VolumeRef, source_settings


class LocalSettings(SourceSettings):
    pass


class LocalSource:
    """``emingest ingest local PATH...``: each path (file, folder of slices, glob, Zarr) is one
    volume. Its id is the file's stem plus a short hash of its absolute path, so two files
    called ``volume.tif`` in different folders never share an output folder."""

    name: ClassVar[str] = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options = source_settings(settings, self.name, LocalSettings)

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        refs = []
        for item in spec:
            p = Path(item).expanduser()
            absolute = str(p.resolve()) if p.exists() else str(p.absolute())
            stem = p.name
            for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr"):
                if stem.lower().endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
            else:
                stem = p.stem if p.suffix and not any(c in stem for c in "*?[") else stem
            stem = stem.replace("*", "").replace("?", "") or "stack"
            digest = hashlib.sha1(absolute.encode()).hexdigest()[:8]
            refs.append(
                VolumeRef(
                    source=self.name, source_id=f"{stem}-{digest}", name=stem, locator=absolute
                )
            )
        return refs

    def _open(self, ref: VolumeRef) -> FileVolume:
        return open_volume(ref.locator, DecodeLimits.from_settings(self.settings.limits))

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        vol = self._open(ref)
        try:
            return VolumeInfo(
                ref=ref,
                shape=vol.shape,
                dtype=vol.dtype,
                voxel_size_nm=vol.voxel_size_nm,
                description=f"local {vol.format} {Path(ref.locator).name}",
                download_url=Path(ref.locator).as_uri()
                if Path(ref.locator).is_absolute()
                else ref.locator,
                voxel_size_origin=vol.voxel_size_origin,
                additional_metadata={
                    "format": vol.format,
                    "path": ref.locator,
                    "header": vol.header,
                },
            )
        finally:
            vol.close()

    def open(self, ref: VolumeRef) -> FileVolume:
        return self._open(ref)
