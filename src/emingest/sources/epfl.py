"""EPFL CVLab CA1 hippocampus FIB-SEM (``emingest ingest epfl [NAME...]``).

Five plain TIFFs in one folder of documents.epfl.ch (the folder name starts with a space: the
URL carries a literal ``%20``). The files carry no calibration: the 5 x 5 x 5 nm voxel size
comes from the dataset's web page, as a setting. Each file is downloaded into the cache
(``Downloader``: resumable, verified, sha256) and read page by page / memory-mapped, so memory
stays bounded whatever the file's size. ``training_groundtruth`` and ``testing_groundtruth``
are masks of ``training`` and ``testing``: their refs say so (``labels_of``).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field, field_validator

from emingest.config import DatasetSettings, Settings
from emingest.errors import ConfigError, EntryNotFoundError
from emingest.fingerprints import fetch_current, remote_file_fingerprint
from emingest.formats.limits import DecodeLimits
from emingest.formats.tiff import TiffVolume
from emingest.sources.base import Source, SourceSettings, VolumeInfo, VolumeRef, source_settings
from emingest.transports import DownloadedFile, Downloader, TransportSettings, default_cache_dir

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = (
    "https://documents.epfl.ch/groups/c/cv/cvlab-unit/www/data/%20ElectronMicroscopy_Hippocampus"
)
LANDING_PAGE = "https://www.epfl.ch/labs/cvlab/data/data-em/"
FILES: dict[str, str] = {
    "volumedata": "CA1 hippocampus FIB-SEM volume (whole block)",
    "training": "Lucchi mitochondria benchmark, training sub-volume",
    "training_groundtruth": "mitochondria masks (0/255) of the training sub-volume",
    "testing": "Lucchi mitochondria benchmark, testing sub-volume",
    "testing_groundtruth": "mitochondria masks (0/255) of the testing sub-volume",
}
LABELS_OF = {"training_groundtruth": "training", "testing_groundtruth": "testing"}
DATASET_ID = "ca1-hippocampus"


class EpflSettings(SourceSettings):
    """``[sources.epfl]``."""

    base_url: str = Field(DEFAULT_BASE_URL, description="Folder URL, with the literal %20")
    files: list[str] = Field(
        default_factory=lambda: list(FILES), description="Files ingested when none are named"
    )
    voxel_size_nm: tuple[float, float, float] = Field(
        (5.0, 5.0, 5.0), description="z, y, x in nm, from the dataset's web page"
    )
    transport: TransportSettings = Field(
        default_factory=lambda: TransportSettings.model_validate({})
    )

    @field_validator("files")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n.removesuffix(".tif") not in FILES]
        if unknown:
            raise ValueError(f"unknown files {unknown}; known: {', '.join(FILES)}")
        return [n.removesuffix(".tif") for n in v]


class EpflSource(Source):
    """The EPFL CVLab CA1 hippocampus EM dataset; one volume per file."""

    name: ClassVar[str] = "epfl"
    description: ClassVar[str] = (
        "Ingest the EPFL CA1 hippocampus volumes; ground truth becomes labels of its volume."
    )
    ids_help: ClassVar[str] = (
        "volumedata training training_groundtruth testing testing_groundtruth (default: all)"
    )
    settings_model: ClassVar[type[SourceSettings]] = EpflSettings
    replica: ClassVar[str] = "emingest.testing.replicas:EpflDemoReplica"
    settings_flags: ClassVar[tuple[str, ...]] = ("base_url",)

    @classmethod
    def default_datasets(cls) -> list[DatasetSettings]:
        # All five files; the ground truths become labels of training/testing.
        return [DatasetSettings(name="epfl-ca1", source="epfl")]

    def check_request(self, spec: Sequence[str], options: Mapping[str, Any]) -> None:
        unknown = [s for s in spec if s.removesuffix(".tif") not in FILES]
        if unknown:
            raise ConfigError(
                f"epfl: no file {', '.join(map(repr, unknown))}; the files are {', '.join(FILES)}"
            )

    def preflight_urls(self) -> list[str]:
        return [self.options.base_url.rstrip("/") + "/"]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options: EpflSettings = source_settings(settings, self.name, EpflSettings)  # type: ignore[assignment]
        transport = self.options.transport
        self.downloader = Downloader(
            transport, default_cache_dir(settings.storage.local_root, self.name, transport)
        )

    def close(self) -> None:
        self.downloader.close()

    def file_url(self, name: str) -> str:
        return f"{self.options.base_url.rstrip('/')}/{urllib.parse.quote(name)}.tif"

    def discover(self, spec: Sequence[str], **options: Any) -> list[VolumeRef]:
        """``spec``: file names (``training`` or ``training.tif``); none: ``files`` setting."""
        names = [s.removesuffix(".tif") for s in spec] or list(self.options.files)
        refs = []
        for name in names:
            if name not in FILES:
                raise EntryNotFoundError(
                    f"EPFL CA1 has no file {name!r} at {self.options.base_url}; the files are "
                    f"{', '.join(FILES)}"
                )
            extra = (("labels_of", LABELS_OF[name]),) if name in LABELS_OF else ()
            refs.append(
                VolumeRef(
                    source=self.name,
                    source_id=DATASET_ID,
                    name=name,
                    locator=self.file_url(name),
                    extra=extra,
                )
            )
        return refs

    def labels_target(self, ref: VolumeRef) -> VolumeRef | None:
        """The image a ground-truth ref labels (for ``VolumeJob(labels_of=...)``), else None."""
        target = ref.get("labels_of")
        return None if target is None else self.discover([target])[0]

    def _fetch(self, ref: VolumeRef) -> DownloadedFile:
        return self.downloader.fetch(ref.locator, f"{ref.name}.tif")

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        """Downloads the file (cached): the archive has no metadata but the file itself.
        One HEAD first: its size and validators are the fingerprint, and a cached copy of
        an older version is downloaded again (``emingest.fingerprints``)."""
        remote = remote_file_fingerprint(self.downloader, ref.locator)
        f = fetch_current(self.downloader, ref.locator, f"{ref.name}.tif", remote)
        vol = TiffVolume(f.path, limits=DecodeLimits.from_settings(self.settings.limits))
        try:
            metadata: dict[str, Any] = {
                "file": f.name,
                "url": f.url,
                "landing_page": LANDING_PAGE,
                "description": FILES[ref.name],
                "tiff_header": vol.header,
                "voxel_size_note": "the files carry no calibration; the voxel size is the one "
                "documented on the dataset's web page (setting sources.epfl.voxel_size_nm)",
            }
            if ref.name in LABELS_OF:
                metadata["role"] = "labels"
                metadata["labels_of"] = LABELS_OF[ref.name]
            return VolumeInfo(
                ref=ref,
                shape=vol.shape,
                dtype=vol.dtype,
                voxel_size_nm=tuple(float(v) for v in self.options.voxel_size_nm),  # type: ignore[arg-type]
                description=f"EPFL CVLab CA1 hippocampus: {FILES[ref.name]}",
                download_url=f.url,
                voxel_size_origin=f"archive documentation ({LANDING_PAGE})",
                additional_metadata=metadata,
                raw_paths=[f.path],
                files=[f.as_file_digest()],
                fingerprint={"files": [remote]},
            )
        finally:
            vol.close()

    def open(self, ref: VolumeRef) -> TiffVolume:
        limits = DecodeLimits.from_settings(self.settings.limits)
        return TiffVolume(self._fetch(ref).path, limits=limits)
