"""A loopback documents.epfl.ch serving the CVLab CA1 hippocampus EM files (archives.md §3, §7.3).

Five plain files in a folder whose name starts with a space (the URL carries a literal
``%20``): ``volumedata.tif`` and the Lucchi benchmark ``training.tif``, ``testing.tif`` and
their ``*_groundtruth.tif`` masks. Each is a classic (not Big) uncompressed multi-page TIFF,
uint8, one IFD per page, 8 KiB strips (RowsPerStrip = 8192 // width, as libtiff writes), and
no calibration (XResolution 1 per inch): the 5 nm voxel size is only on the web page.

The images are :class:`~emingest.testing.synthetic.SyntheticEM` volumes at small test shapes
(volumedata 48 x 96 x 128, training and testing 16 x 48 x 64, z y x, where the real files are
1065 x 1536 x 2048 and 165 x 768 x 1024); a ground truth is the organelle class of its volume
as 0/255. Whether the real server honours Range is not known, so ``faults.range_support``
switches it; there is no directory listing (403), as on documents.epfl.ch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from emingest.testing.http import HTTPReplica
from emingest.testing.synthetic import CLASS_ORGANELLE, SyntheticEM, write_tiff_stack

__all__ = ["EPFLReplica"]

FOLDER = "/groups/c/cv/cvlab-unit/www/data/ ElectronMicroscopy_Hippocampus"
"""The folder's path as the server sees it, decoded (note the leading space of the last part)."""
FOLDER_URL = "/groups/c/cv/cvlab-unit/www/data/%20ElectronMicroscopy_Hippocampus"
"""The same path as it appears in URLs."""
NAMES = (
    "volumedata",
    "training",
    "training_groundtruth",
    "testing",
    "testing_groundtruth",
)
DOCUMENTED_VOXEL_SIZE_NM = (5.0, 5.0, 5.0)
"""From the dataset's web page; the files carry no calibration."""


class _Mask:
    """The 0/255 organelle mask of a synthetic volume, read by region."""

    def __init__(self, source: SyntheticEM) -> None:
        self.source = source
        self.shape = source.shape
        self.dtype = np.dtype(np.uint8)

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        return (self.source.classes(region) == CLASS_ORGANELLE).astype(np.uint8) * np.uint8(255)


class EPFLReplica(HTTPReplica):
    """The five EPFL CA1 TIFFs over HTTP, under :attr:`base_url`, with the base faults.

    ``root`` is a working folder; the files are written there at construction.
    """

    def __init__(
        self,
        root: Path,
        *,
        volume_shape: tuple[int, int, int] = (48, 96, 128),
        subvolume_shape: tuple[int, int, int] = (16, 48, 64),
        seed: int = 0,
        byteorder: Literal["<", ">"] = "<",
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.seed = int(seed)
        self.byteorder = byteorder
        self.folder = self.root / "documents" / " ElectronMicroscopy_Hippocampus"
        self.folder.mkdir(parents=True, exist_ok=True)
        vz, vy, vx = (int(s) for s in volume_shape)
        sz, sy, sx = (int(s) for s in subvolume_shape)
        volume = SyntheticEM((vz, vy, vx), "uint8", self.seed)
        training = SyntheticEM((sz, sy, sx), "uint8", self.seed + 1)
        testing = SyntheticEM((sz, sy, sx), "uint8", self.seed + 2)
        self._sources: dict[str, Any] = {
            "volumedata": volume,
            "training": training,
            "training_groundtruth": _Mask(training),
            "testing": testing,
            "testing_groundtruth": _Mask(testing),
        }
        for name, source in self._sources.items():
            width = source.shape[2]
            write_tiff_stack(
                self.folder / f"{name}.tif",
                source,
                byteorder=byteorder,
                rowsperstrip=max(1, 8192 // width),
            )
        self.serve_tree(FOLDER, self.folder, autoindex=False)

    @property
    def base_url(self) -> str:
        """The folder URL, ``.../data/%20ElectronMicroscopy_Hippocampus`` (no trailing slash)."""
        return f"{self.url}{FOLDER_URL}"

    @property
    def file_names(self) -> list[str]:
        return [f"{name}.tif" for name in NAMES]

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/{self._key(name)}.tif"

    def file_path(self, name: str) -> Path:
        """Where the file lies on disk (to corrupt or compare it)."""
        return self.folder / f"{self._key(name)}.tif"

    def expected_array(self, name: str) -> np.ndarray:
        """The truth (z, y, x) uint8 of ``name`` (``"training"`` or ``"training.tif"``)."""
        source = self._sources[self._key(name)]
        z, y, x = source.shape
        return np.asarray(source.read((slice(0, z), slice(0, y), slice(0, x))))

    @staticmethod
    def expected_voxel_size_nm(name: str = "volumedata") -> None:
        """None: the files carry no calibration (see :data:`DOCUMENTED_VOXEL_SIZE_NM`)."""
        return None

    def _key(self, name: str) -> str:
        key = name.removesuffix(".tif")
        if key not in self._sources:
            raise KeyError(f"no file {name!r}; the files are {', '.join(self.file_names)}")
        return key

    def __enter__(self) -> EPFLReplica:
        self.start()
        return self
