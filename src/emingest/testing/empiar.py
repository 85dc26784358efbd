"""A loopback replica of EMPIAR: the entry API, the ``world_availability`` tree over HTTP and FTP.

What the real services answer (archives.md §2, §7.2), on 127.0.0.1:

* ``GET /empiar/api/entry/{11759|EMPIAR-11759}[/]`` -> ``{"EMPIAR-11759": {...}}`` with the
  consumer-confirmed fields: strings for ``image_width``/``image_height``, **Å** for
  ``pixel_width``/``pixel_height``, dates ``YYYY-MM-DD``, ``dataset_size`` a human string. An
  unknown id answers 404 ``{"detail": "Not found."}``. ``POST /empiar/api/entry/`` with a body
  such as ``"11759,10310"`` or ``"10000-10499"`` returns the known ones in one dict.
* ``/empiar/world_availability/{n}/`` -> Apache autoindex (sort links, ``../``), ``{n}.xml``
  (namespace ``http://pdbe.org/empiar``, built from the same record as the JSON), ``data/``;
  files with HEAD, Range/206 and 416. The same tree over anonymous FTP.
* EMPIAR-11759: 16 SBF-SEM slices ``F57-8_test1_3VBSED_slice_00NN.dm3`` (uint8, a thumbnail
  first in ``ImageList``, 0.0079982504 µm pixels, the 50 nm slice step only in the SBF-SEM tags)
  plus a ``trakem2/`` folder with a nested subfolder. Slices are consecutive z-planes of one
  :class:`~emingest.testing.synthetic.SyntheticEM`, so :meth:`EmpiarReplica.expected_stack` is
  the truth. In-plane size is 160 x 150 (y, x) by default; ``slice_shape=FULL_SLICE_SHAPE``
  gives the real 5500 x 5496 (30 MB a slice). The pixel size stays 8 nm either way: a small
  replica is a crop of the field of view, not a binned one.
* EMPIAR-10310 (an id picked for the replica): ``data/`` holds int16 3-D MRC volumes written by
  mrcfile, voxel size in Å in the header and in the API.

::

    with EmpiarReplica(tmp_path) as empiar:
        requests.get(f"{empiar.api_url}/entry/11759/").json()["EMPIAR-11759"]
        ftplib.FTP() ... empiar.files_ftp_url
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emingest.testing.dm3 import DEFAULT_PIXEL_SIZE_UM, write_dm3
from emingest.testing.ftp import FTPReplica
from emingest.testing.http import HTTPReplica, RequestContext
from emingest.testing.synthetic import SyntheticEM

__all__ = [
    "DM3_ENTRY",
    "FULL_SLICE_SHAPE",
    "MRC_ENTRY",
    "EmpiarReplica",
]

DM3_ENTRY = "11759"
MRC_ENTRY = "10310"
FULL_SLICE_SHAPE = (5500, 5496)
"""EMPIAR-11759's slices, (y, x): DM3 ``Dimensions.1 = 5500`` (height), ``.0 = 5496`` (width)."""
SLICE_NAME = "F57-8_test1_3VBSED_slice_{:04d}.dm3"
EMPIAR_NS = "http://pdbe.org/empiar"
_XSD = "https://ftp.ebi.ac.uk/pub/databases/emtest/empiar/schema/empiar.xsd"


@dataclass(frozen=True)
class _Entry:
    accession: str  # "11759"
    record: dict[str, Any]  # the API's value under "EMPIAR-11759"
    folder: Path
    data_files: tuple[str, ...]
    voxel_size_nm: tuple[float, float, float]


class EmpiarReplica(HTTPReplica):
    """EMPIAR's API and file tree over HTTP, and the tree over FTP, sharing :attr:`faults`.

    ``root`` is a working folder; the files are written there at construction, under
    ``empiar/world_availability/{n}/`` (the FTP root is ``root`` itself, as on ftp.ebi.ac.uk).
    """

    def __init__(
        self,
        root: Path,
        *,
        slice_shape: tuple[int, int] = (160, 150),
        n_slices: int = 16,
        seed: int = 0,
        mrc_shape: tuple[int, int, int] = (12, 48, 40),
        mrc_count: int = 2,
        mrc_voxel_size_angstrom: tuple[float, float, float] = (42.0, 21.0, 21.0),
        thumbnail: bool = True,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.seed = int(seed)
        self.slice_shape = (int(slice_shape[0]), int(slice_shape[1]))
        self.n_slices = int(n_slices)
        self.mrc_shape = (int(mrc_shape[0]), int(mrc_shape[1]), int(mrc_shape[2]))
        vz, vy, vx = (float(v) for v in mrc_voxel_size_angstrom)
        self.mrc_voxel_size_angstrom = (vz, vy, vx)
        self.tree = self.root / "empiar" / "world_availability"
        self._volume = SyntheticEM((self.n_slices, *self.slice_shape), "uint8", self.seed)
        self.entries: dict[str, _Entry] = {
            DM3_ENTRY: self._write_dm3_entry(thumbnail),
            MRC_ENTRY: self._write_mrc_entry(mrc_count),
        }
        self.ftp = FTPReplica(self.root, self.faults)
        self.route("GET", r"/empiar/api/entry/(?P<id>[^/]+)/?", self._get_entry)
        self.route("POST", r"/empiar/api/entry/?", self._post_entries)
        self.serve_tree("/empiar/world_availability", self.tree)

    # -- what tests compare against ------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.url}/empiar/api"

    @property
    def files_http_url(self) -> str:
        return f"{self.url}/empiar/world_availability"

    @property
    def files_ftp_url(self) -> str:
        return f"{self.ftp.url}/empiar/world_availability"

    @property
    def dm3_names(self) -> list[str]:
        """The 16 slice names of EMPIAR-11759's ``data/``, in z order."""
        return list(self.entries[DM3_ENTRY].data_files)

    @property
    def mrc_names(self) -> list[str]:
        return list(self.entries[MRC_ENTRY].data_files)

    def data_files(self, entry: str = DM3_ENTRY) -> list[str]:
        """File names in ``{entry}/data/``, sorted (z order for the DM3 slices)."""
        return list(self._entry(entry).data_files)

    def entry_json(self, entry: str = DM3_ENTRY) -> dict[str, Any]:
        """What ``GET /empiar/api/entry/{entry}/`` answers: ``{"EMPIAR-n": {...}}``."""
        e = self._entry(entry)
        return {f"EMPIAR-{e.accession}": json.loads(json.dumps(e.record))}

    def serve_record(self, record: dict[str, Any], entry: str = DM3_ENTRY) -> None:
        """Answer ``record`` (the value under ``"EMPIAR-n"``) for ``entry`` from now on: a
        fixture in the shape of a real answer, served beside the replica's files."""
        live = self._entry(entry).record
        live.clear()
        live.update(json.loads(json.dumps(record)))

    def expected_stack(self, entry: str = DM3_ENTRY) -> np.ndarray:
        """The stacked slices of ``entry`` (z, y, x) uint8, exactly as the DM3 files hold them."""
        if self._entry(entry).accession != DM3_ENTRY:
            raise KeyError(f"EMPIAR-{entry} holds MRC volumes; use expected_volumes()")
        return self._volume.array()

    def expected_volumes(self, entry: str = MRC_ENTRY) -> dict[str, np.ndarray]:
        """File name -> volume (z, y, x) for the MRC entry."""
        e = self._entry(entry)
        if e.accession != MRC_ENTRY:
            raise KeyError(f"EMPIAR-{entry} holds DM3 slices; use expected_stack()")
        return {name: self._mrc_volume(i) for i, name in enumerate(e.data_files)}

    def expected_voxel_size_nm(self, entry: str = DM3_ENTRY) -> tuple[float, float, float]:
        """(z, y, x) nm, from the values written: the DM3 float32 µm scale and the SBF-SEM slice
        thickness for 11759 (50, 7.99825..., 7.99825...); the MRC header's Å for 10310."""
        return self._entry(entry).voxel_size_nm

    def file_path(self, entry: str, name: str) -> Path:
        """Where ``{entry}/data/{name}`` lies on disk (to corrupt or compare it)."""
        return self._entry(entry).folder / "data" / name

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> EmpiarReplica:
        super().start()
        try:
            self.ftp.start()
        except BaseException:
            super().stop()
            raise
        return self

    def stop(self) -> None:
        self.ftp.stop()
        super().stop()

    def __enter__(self) -> EmpiarReplica:
        return self.start()

    # -- routes --------------------------------------------------------------------------------

    def _get_entry(self, ctx: RequestContext) -> None:
        e = self._lookup(ctx.match.group("id"))
        if e is None:
            ctx.send_json({"detail": "Not found."}, status=404)
        else:
            ctx.send_json({f"EMPIAR-{e.accession}": e.record})

    def _post_entries(self, ctx: RequestContext) -> None:
        length = int(ctx.header("Content-Length") or 0)
        body = ctx.handler.rfile.read(length).decode("utf-8", "replace").strip().strip('"')
        found: dict[str, Any] = {}
        for n in _parse_id_list(body):
            e = self.entries.get(str(n))
            if e is not None:
                found[f"EMPIAR-{e.accession}"] = e.record
        if not found:
            ctx.send_json({"detail": "Not found."}, status=404)
        else:
            ctx.send_json(found)

    def _lookup(self, ident: str) -> _Entry | None:
        m = re.fullmatch(r"(?:EMPIAR-)?0*(\d+)", ident.strip(), flags=re.IGNORECASE)
        return self.entries.get(m.group(1)) if m else None

    def _entry(self, entry: str) -> _Entry:
        e = self._lookup(str(entry))
        if e is None:
            raise KeyError(f"the replica has no entry {entry!r}; it has {sorted(self.entries)}")
        return e

    # -- writing the tree ----------------------------------------------------------------------

    def _write_dm3_entry(self, thumbnail: bool) -> _Entry:
        n = DM3_ENTRY
        folder = self.tree / n
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        height, width = self.slice_shape
        names = tuple(SLICE_NAME.format(z) for z in range(self.n_slices))
        for z, name in enumerate(names):
            plane = self._volume.read((slice(z, z + 1), slice(0, height), slice(0, width)))[0]
            write_dm3(data / name, plane, thumbnail=thumbnail, slice_thickness_nm=50.0)
        _write_trakem2(folder / "trakem2", names, self._volume)
        pixel_nm = float(np.float32(DEFAULT_PIXEL_SIZE_UM)) * 1000.0
        record = _record(
            n,
            title="Serial block-face SEM of the developing zebrafish retina, 55 hpf (replica)",
            experiment_type="SBF-SEM",
            dataset_size=_human_size(_tree_size(folder)),
            imageset={
                "name": "SBF-SEM slices of the 55 hpf larval eye",
                "directory": "data",
                "category": "reconstructed volumes",
                "header_format": "DM3",
                "data_format": "DM3",
                "num_images_or_tilt_series": self.n_slices,
                "frames_per_image": 1,
                "voxel_type": "UNSIGNED BYTE",
                "pixel_width": 80.0,
                "pixel_height": 80.0,
                "details": "Gatan 3View on an FEI Quanta, 1.9 kV, 8 nm pixels, 50 nm sections. "
                "Each DM3 file holds one section; a TrakEM2 project is in trakem2/.",
                "image_width": str(width),
                "image_height": str(height),
                "micrographs_file_pattern": "data/F57-8_test1_3VBSED_slice_*.dm3",
            },
        )
        _write_atomic(folder / f"{n}.xml", _entry_xml(n, record))
        return _Entry(n, record, folder, names, (50.0, pixel_nm, pixel_nm))

    def _mrc_volume(self, i: int) -> np.ndarray:
        return SyntheticEM(self.mrc_shape, "int16", self.seed + 1000 + i).array()

    def _write_mrc_entry(self, count: int) -> _Entry:
        import mrcfile

        n = MRC_ENTRY
        folder = self.tree / n
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        vz, vy, vx = self.mrc_voxel_size_angstrom
        names = tuple(f"tomogram_{i + 1:03d}.mrc" for i in range(count))
        for i, name in enumerate(names):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=data)
            os.close(fd)
            try:
                with mrcfile.new(tmp, overwrite=True) as mrc:
                    mrc.set_data(self._mrc_volume(i))
                    mrc.voxel_size = (vx, vy, vz)  # mrcfile's record is (x, y, z), in Å
                    mrc.update_header_stats()
                os.replace(tmp, data / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        nz, ny, nx = self.mrc_shape
        record = _record(
            n,
            title="Cryo-electron tomograms of a vitrified cell periphery (replica)",
            experiment_type="ET",
            dataset_size=_human_size(_tree_size(folder)),
            imageset={
                "name": "Reconstructed tomograms",
                "directory": "data",
                "category": "reconstructed volumes",
                "header_format": "MRC",
                "data_format": "MRC",
                "num_images_or_tilt_series": count,
                "frames_per_image": nz,
                "voxel_type": "SIGNED 16 BIT INTEGER",
                "pixel_width": vx,
                "pixel_height": vy,
                "details": f"Voxel size {vx} x {vy} x {vz} Å (x, y, z).",
                "image_width": str(nx),
                "image_height": str(ny),
                "micrographs_file_pattern": "data/tomogram_*.mrc",
            },
        )
        _write_atomic(folder / f"{n}.xml", _entry_xml(n, record))
        # What the header says, as mrcfile reads it back (cella / mx, float32).
        with mrcfile.open(data / names[0], permissive=False) as mrc:
            vs = mrc.voxel_size
            voxel_nm = (float(vs.z) / 10.0, float(vs.y) / 10.0, float(vs.x) / 10.0)
        return _Entry(n, record, folder, names, voxel_nm)


# -- records ---------------------------------------------------------------------------------------


def _record(
    n: str, *, title: str, experiment_type: str, dataset_size: str, imageset: dict[str, Any]
) -> dict[str, Any]:
    """One entry as the API's JSON value; field names as confirmed by consumers (§2.3)."""
    people = [("Doe", "Jane", "J"), ("Roe", "Richard", "R"), ("Moe", "Maria", "M")]
    authors = [
        {"author": {"name": f"{last} {ini}", "order_id": i, "author_orcid": None}}
        for i, (last, _first, ini) in enumerate(people)
    ]
    contact = {
        "author": {
            "first_name": "Jane",
            "middle_name": None,
            "last_name": "Doe",
            "organization": "Replica Institute of Microscopy",
            "street": "1 Loopback Road",
            "town_or_city": "Localhost",
            "state_or_province": None,
            "post_or_zip": "127001",
            "country": "United Kingdom",
            "email": "jane.doe@example.org",
            "telephone": None,
            "fax": None,
            "author_orcid": None,
        }
    }
    return {
        "title": title,
        "status": "REL",
        "experiment_type": experiment_type,
        "scale": "cellular",
        "entry_doi": f"10.6019/EMPIAR-{n}",
        "deposition_date": "2023-09-18",
        "release_date": "2023-11-06",
        "update_date": "2023-11-06",
        "obsolete_date": None,
        "dataset_size": dataset_size,
        "cross_references": [],
        "related_pdb_entries": [],
        "biostudies_references": [],
        "idr_references": [],
        "empiar_references": [],
        "authors": authors,
        "corresponding_author": contact,
        "principal_investigator": [contact],
        "citation": [
            {
                "authors": authors,
                "editors": [],
                "published": False,
                "preprint": False,
                "j_or_nj_citation": True,
                "title": title,
                "journal": "To be published",
                "journal_abbreviation": "To be published",
                "volume": None,
                "issue": None,
                "first_page": None,
                "last_page": None,
                "year": None,
                "language": "en",
                "doi": None,
                "pubmedid": None,
                "country": None,
                "details": None,
                "book_chapter_title": None,
                "publisher": None,
                "publication_location": None,
            }
        ],
        "grant_references": [],
        "workflows": [],
        "workflow_file": None,
        "version_history": [{"status_code": "REL", "date": "2023-11-06", "details": None}],
        "imagesets": [
            {
                **imageset,
                "picked_particles_file_pattern": "",
                "picked_particles_directory": "",
                "segmentations": [],
            }
        ],
    }


def _entry_xml(n: str, record: dict[str, Any]) -> bytes:
    """The entry XML (as empiarreader's ``10934.xml`` fixture lays it out), from ``record``."""
    entry = ET.Element(
        "entry",
        {
            "xmlns": EMPIAR_NS,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": _XSD,
            "accessionCode": f"EMPIAR-{n}",
            "public": "true",
        },
    )

    def sub(parent: ET.Element, tag: str, text: Any = None, **attrib: str) -> ET.Element:
        el = ET.SubElement(parent, tag, attrib)
        if text is not None:
            el.text = str(text)
        return el

    admin = sub(entry, "admin")
    sub(admin, "currentStatus", record["status"])
    dates = sub(admin, "keyDates")
    sub(dates, "depositionDate", record["deposition_date"])
    sub(dates, "releaseDate", record["release_date"])
    sub(dates, "updateDate", record["update_date"])
    sub(admin, "title", record["title"])
    contact = record["corresponding_author"]["author"]
    ca = sub(admin, "correspondingAuthor")
    for tag, key in (
        ("firstName", "first_name"),
        ("lastName", "last_name"),
        ("organization", "organization"),
        ("street", "street"),
        ("townOrCity", "town_or_city"),
        ("country", "country"),
        ("postOrZipCode", "post_or_zip"),
    ):
        sub(ca, tag, contact[key])
    authors = sub(admin, "authorsList")
    for a in record["authors"]:
        sub(authors, "author", a["author"]["name"])
    size, units = record["dataset_size"].split()
    sub(admin, "datasetSize", size, units=units)
    sub(admin, "entryDOI", record["entry_doi"])
    sub(admin, "experimentType", record["experiment_type"])
    sub(entry, "crossReferences")
    for item in record["imagesets"]:
        s = sub(entry, "imageSet")
        sub(s, "name", item["name"])
        sub(s, "directory", "/" + item["directory"])
        sub(s, "category", item["category"])
        sub(s, "headerFormat", item["header_format"])
        sub(s, "dataFormat", item["data_format"])
        sub(s, "numImagesOrTiltSeries", item["num_images_or_tilt_series"])
        sub(s, "framesPerImage", item["frames_per_image"])
        sub(s, "voxelType", item["voxel_type"])
        dims = sub(s, "dimensions")
        sub(dims, "imageWidth", item["image_width"])
        sub(dims, "pixelWidth", item["pixel_width"])
        sub(dims, "imageHeight", item["image_height"])
        sub(dims, "pixelHeight", item["pixel_height"])
        sub(s, "details", item["details"])
        sub(s, "segmentationList")
        sub(s, "micrographsFilePattern", item["micrographs_file_pattern"])
        sub(s, "pickedParticlesFilePattern", "")
        sub(s, "pickedParticlesDirectory", "")
    ET.indent(entry, space="    ")
    return ET.tostring(entry, encoding="utf-8", xml_declaration=False) + b"\n"


def _write_trakem2(folder: Path, names: tuple[str, ...], volume: SyntheticEM) -> None:
    """A TrakEM2 project file and a nested ``trakem2.<ids>/trakem2.mipmaps/0/`` with one JPEG."""
    import imagecodecs

    _, ny, nx = volume.shape
    mipmaps = folder / "trakem2.1528744716.1259371024.4251" / "trakem2.mipmaps" / "0"
    layers = "\n".join(
        f'      <t2_layer oid="{10 + z}" thickness="6.25" z="{z * 6.25}">\n'
        f'        <t2_patch oid="{100 + z}" width="{nx}" height="{ny}"'
        f' file_path="../data/{name}"/>\n'
        "      </t2_layer>"
        for z, name in enumerate(names)
    )
    project = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<trakem2>\n'
        f'  <project id="0" title="F57-8_test1.xml"'
        f' mipmaps_folder="{mipmaps.parent.relative_to(folder).as_posix()}/">\n'
        '  </project>\n  <t2_layer_set oid="3">\n'
        f"{layers}\n  </t2_layer_set>\n</trakem2>\n"
    )
    _write_atomic(folder / "F57-8_test1.xml", project.encode("latin-1"))
    mipmaps.mkdir(parents=True, exist_ok=True)
    plane = volume.read((slice(0, 1), slice(0, min(ny, 64)), slice(0, min(nx, 64))))[0]
    _write_atomic(mipmaps / f"{names[0]}.100.jpg", bytes(imagecodecs.jpeg8_encode(plane, level=75)))


def _parse_id_list(body: str) -> Iterator[int]:
    """``"10000-10499"``, ``"11759,11760"`` or a mix, as the bulk POST takes them."""
    for part in body.split(","):
        part = part.strip().removeprefix("EMPIAR-")
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            yield from range(lo, min(hi, lo + 100_000) + 1)
        elif part.isdigit():
            yield int(part)


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _human_size(n: int) -> str:
    """``"1.2 GB"``-style, as the API's ``dataset_size`` (decimal units)."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
