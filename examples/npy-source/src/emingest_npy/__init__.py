"""An emingest source in one module: 3-D ``.npy`` files in a folder served over HTTP.

``emingest ingest npy NAME... --base-url http://host/folder/`` fetches ``NAME.npy`` into the
cache (emingest's own downloader: temp file, verify, rename) and reads regions from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from emingest.config import Settings
from emingest.readers import VolumeReader
from emingest.regions import Region
from emingest.sources.base import Source, SourceSettings, VolumeInfo, VolumeRef, source_settings
from emingest.transports import Downloader, TransportSettings, default_cache_dir


class NpySettings(SourceSettings):
    """``[sources.npy]``."""

    base_url: str = Field("http://127.0.0.1:8000/", description="Folder URL of the .npy files")
    voxel_size_nm: tuple[float, float, float] | None = Field(None, description="Z Y X, nm")
    transport: TransportSettings = Field(default_factory=TransportSettings)


class NpyReader(VolumeReader):
    def __init__(self, path: Any) -> None:
        array = np.load(path, mmap_mode="r")
        self._array = array.reshape((1,) * (3 - array.ndim) + array.shape)
        self.shape = self._array.shape
        self.dtype = self._array.dtype.newbyteorder("=")

    def read(self, region: Region) -> np.ndarray:
        return np.ascontiguousarray(self._array[region], dtype=self.dtype)


class NpySource(Source):
    name: ClassVar[str] = "npy"
    description: ClassVar[str] = "Ingest 3-D .npy files from a folder served over HTTP."
    ids_help: ClassVar[str] = "File names in the folder, without .npy"
    settings_model: ClassVar[type[SourceSettings]] = NpySettings
    settings_flags: ClassVar[tuple[str, ...]] = ("base_url",)

    def __init__(self, settings: Settings) -> None:
        self.options: NpySettings = source_settings(settings, self.name, NpySettings)  # type: ignore[assignment]
        cache = default_cache_dir(settings.storage.data_root, self.name, self.options.transport)
        self.downloader = Downloader(self.options.transport, cache)

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        base = self.options.base_url.rstrip("/")
        return [VolumeRef(self.name, "files", n, f"{base}/{n}.npy") for n in spec]

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        reader = self.open(ref)  # a file archive: the file itself is the metadata
        return VolumeInfo(
            ref, reader.shape, reader.dtype, self.options.voxel_size_nm,
            download_url=ref.locator, voxel_size_origin="settings",
        )

    def open(self, ref: VolumeRef) -> NpyReader:
        return NpyReader(self.downloader.fetch(ref.locator, f"{ref.name}.npy").path)

    def preflight_urls(self) -> list[str]:
        return [self.options.base_url]

    def close(self) -> None:
        self.downloader.close()
