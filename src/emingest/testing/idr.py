"""A loopback IDR: the OMERO.web JSON API and webgateway, plus EBI's file tree (HTTP and FTP).

What it serves (archives.md §1, §7.1), with the shapes omero-web and omero-marshal produce:

* ``/api/``, ``/api/v0/``; ``/api/v0/m/images/{id}/`` (Pixels and Channels), the image lists
  ``/api/v0/m/images/?dataset={id}`` and ``/api/v0/m/datasets/{id}/images/`` (``offset``,
  ``limit``: default 200, clamped to 500 as ``omero.web.api.max_limit``, a non-integer is a 400
  ``{"message": ...}``; ordered by ``lower(Name)``; items carry Pixels but no Channels),
  ``/api/v0/m/datasets/{id}/``, the parent lists and ``/api/v0/m/projects/{id}/``;
  unknown objects are 404 ``{"message": "Image 123 not found", "stacktrace": ...}``.
* ``/webclient/imgData/{id}/`` and ``/webgateway/imgData/{id}/[{key}/]`` (imageMarshal),
  ``/webgateway/original_file_paths/{id}/``, and the rendered JPEGs ``render_image``,
  ``render_image_region`` (400 without ``region`` or ``tile``) and ``render_thumbnail``.
* ``/pub/databases/IDR/...`` as ``ftp.ebi.ac.uk`` serves it over HTTPS (autoindex, Range) and,
  on :attr:`IDRReplica.ftp`, the same tree over anonymous FTP, both under one :class:`Faults`.

Image 9846137 (``Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif``) is a big-endian ImageJ TIFF of
a :class:`~emingest.testing.synthetic.SyntheticEM` (uint8, ``unit=\\u00B5m``, ``spacing=0.02``,
one strip per page) of ``image_shape`` (z, y, x), 24 x 100 x 140 by default instead of the real
184 x 775 x 1121; its ``_xz`` sibling 9846138 is the same volume resliced (pages along y). Both
sit in dataset 10740. Dataset 90001 holds ``bulk_images`` images (metadata only: their original
files are not served) so that paging past 500 can be exercised.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emingest.testing.ftp import FTPReplica
from emingest.testing.http import HTTPReplica, RequestContext
from emingest.testing.synthetic import SyntheticEM, write_tiff_stack

__all__ = ["IDRReplica"]

SCHEMA = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
API_VERSION = "0"
DEFAULT_LIMIT = 200
MAX_LIMIT = 500
MAX_TILE = 1024  # omero.pixeldata.max_tile_length

IMAGE_ID = 9846137
XZ_IMAGE_ID = 9846138  # [U] the sibling's real id is not known
DATASET_ID = 10740
PROJECT_ID = 1151  # [U] idr0086-miron-micrographs/experimentD
BULK_DATASET_ID = 90001
BULK_FIRST_ID = 90_000_000

FILESET = "idr0086-miron-micrographs/20200610-ftp/experimentD/Miron_FIB-SEM/Miron_FIB-SEM_processed"
"""The images' folder below ``/pub/databases/IDR/`` (and below ``/uod/idr/filesets/``)."""
XY_NAME = "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif"
XZ_NAME = "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xz.tif"
VOXEL_UM = 0.02


@dataclass
class _Image:
    id: int
    name: str
    dataset: int
    size_zyx: tuple[int, int, int]
    pixels_type: str = "uint8"
    voxel_um: float = VOXEL_UM
    file: str | None = None  # path below /pub/databases/IDR/, when the original is served
    window: tuple[float, float] = (0.0, 255.0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Dataset:
    id: int
    name: str
    description: str
    images: list[int]


class _Resliced:
    """A volume seen as its xz reslice: pages along y, each page (z, x)."""

    def __init__(self, source: SyntheticEM) -> None:
        self.source = source
        z, y, x = source.shape
        self.shape = (y, z, x)
        self.dtype = source.dtype

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        sy, sz, sx = region
        return np.ascontiguousarray(self.source.read((sz, sy, sx)).transpose(1, 0, 2))


class IDRReplica(HTTPReplica):
    """IDR's OMERO.web API and EBI's ``/pub/databases/IDR`` tree (HTTP and FTP), one fault set.

    ``root`` is a working folder: the TIFFs are written there at construction, under
    ``pub/databases/IDR/`` (the FTP root is ``root`` itself, as on ftp.ebi.ac.uk).
    """

    def __init__(
        self,
        root: Path,
        *,
        image_shape: tuple[int, int, int] = (24, 100, 140),
        seed: int = 0,
        bulk_images: int = 1203,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.seed = int(seed)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.tree = self.root / "pub" / "databases" / "IDR"
        self._volume = SyntheticEM(self.image_shape, "uint8", self.seed)  # type: ignore[arg-type]
        self.images: dict[int, _Image] = {}
        self.datasets: dict[int, _Dataset] = {}
        self.file_paths_form = "managed"
        """How ``original_file_paths`` names files: see :meth:`original_file_paths`."""
        self._write_originals()
        self._add_bulk(int(bulk_images))
        self.ftp = FTPReplica(self.root, self.faults)

        api = r"/api/v0/m"
        self.route("GET", r"/api/?", self._api_versions)
        self.route("GET", r"/api/v0/?", self._api_base)
        self.route("GET", api + r"/images/?", self._images_list)
        self.route("GET", api + r"/images/(?P<id>\d+)/?", self._image)
        self.route("GET", api + r"/images/(?P<id>\d+)/datasets/?", self._image_datasets)
        self.route("GET", api + r"/datasets/(?P<id>\d+)/?", self._dataset)
        self.route("GET", api + r"/datasets/(?P<id>\d+)/images/?", self._images_list)
        self.route("GET", api + r"/datasets/(?P<id>\d+)/projects/?", self._dataset_projects)
        self.route("GET", api + r"/projects/(?P<id>\d+)/?", self._project)
        self.route(
            "GET",
            r"/(?:webclient|webgateway)/imgData/(?P<id>\d+)(?:/(?P<key>\w+))?/?",
            self._img_data,
        )
        self.route("GET", r"/webgateway/original_file_paths/(?P<id>\d+)/?", self._file_paths)
        self.route(
            "GET",
            r"/webgateway/render_image/(?P<id>\d+)(?:/(?P<z>\d+)(?:/(?P<t>\d+))?)?/?",
            self._render_image,
        )
        self.route(
            "GET",
            r"/webgateway/render_image_region/(?P<id>\d+)/(?P<z>\d+)/(?P<t>\d+)/?",
            self._render_region,
        )
        self.route(
            "GET",
            r"/(?:webgateway|webclient)/render_thumbnail/(?P<id>\d+)"
            r"(?:/(?P<w>\d+)(?:/(?P<h>\d+))?)?/?",
            self._render_thumbnail,
        )
        self.serve_tree("/pub/databases/IDR", self.tree)

    # -- what tests compare against ------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The OMERO.web base (``https://idr.openmicroscopy.org``); the API is at ``/api/v0/``."""
        return self.url

    @property
    def files_http_url(self) -> str:
        """``https://ftp.ebi.ac.uk/pub/databases/IDR`` of this replica."""
        return f"{self.url}/pub/databases/IDR"

    @property
    def files_ftp_url(self) -> str:
        """``ftp://ftp.ebi.ac.uk/pub/databases/IDR`` of this replica."""
        return f"{self.ftp.url}/pub/databases/IDR"

    @property
    def image_ids(self) -> list[int]:
        """Images whose original file is served (9846137 and its xz sibling)."""
        return [IMAGE_ID, XZ_IMAGE_ID]

    @property
    def dataset_id(self) -> int:
        return DATASET_ID

    @property
    def bulk_dataset_id(self) -> int:
        """A dataset of more than 500 images (metadata only) for paging."""
        return BULK_DATASET_ID

    def file_path(self, image_id: int) -> str:
        """The original's path below ``/pub/databases/IDR/`` (also below ``/uod/idr/filesets/``)."""
        image = self._get_image(image_id)
        if image.file is None:
            raise KeyError(f"image {image_id} has no original file in this replica")
        return image.file

    def file_url(self, image_id: int, protocol: str = "http") -> str:
        base = self.files_ftp_url if protocol == "ftp" else self.files_http_url
        return f"{base}/{self.file_path(image_id)}"

    def expected_array(self, image_id: int) -> np.ndarray:
        """The truth (z, y, x) of what the image's original file holds, page by page."""
        volume = self._volume.array()
        if image_id == IMAGE_ID:
            return volume
        if image_id == XZ_IMAGE_ID:
            return np.ascontiguousarray(volume.transpose(1, 0, 2))
        raise KeyError(f"image {image_id} has no pixels in this replica")

    def expected_voxel_size_nm(self, image_id: int) -> tuple[float, float, float]:
        """(z, y, x) in nm: 0.02 µm isotropic, i.e. 20 nm."""
        image = self._get_image(image_id)
        v = round(image.voxel_um * 1000.0, 9)
        return (v, v, v)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> IDRReplica:
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

    def __enter__(self) -> IDRReplica:
        return self.start()

    # -- content -------------------------------------------------------------------------------

    def _write_originals(self) -> None:
        folder = self.tree / FILESET
        folder.mkdir(parents=True, exist_ok=True)
        z, y, x = self.image_shape
        volume = self._volume.array()
        window = (float(volume.min()), float(volume.max()))
        for image_id, name, source, size in (
            (IMAGE_ID, XY_NAME, self._volume, (z, y, x)),
            (XZ_IMAGE_ID, XZ_NAME, _Resliced(self._volume), (y, z, x)),
        ):
            write_tiff_stack(
                folder / name, source, byteorder=">", imagej=True, voxel_size_um=VOXEL_UM
            )
            self.images[image_id] = _Image(
                image_id, name, DATASET_ID, size, file=f"{FILESET}/{name}", window=window
            )
        self.datasets[DATASET_ID] = _Dataset(
            DATASET_ID,
            "U2OS_chromatin",
            "FIB-SEM of U2OS cell nuclei (idr0086, experimentD)",
            [IMAGE_ID, XZ_IMAGE_ID],
        )

    def _add_bulk(self, count: int) -> None:
        ids = []
        for i in range(count):
            image_id = BULK_FIRST_ID + i
            self.images[image_id] = _Image(
                image_id, f"synthetic_{i:05d}.tif", BULK_DATASET_ID, (4, 16, 16)
            )
            ids.append(image_id)
        self.datasets[BULK_DATASET_ID] = _Dataset(
            BULK_DATASET_ID, "bulk_paging", "Synthetic images, metadata only", ids
        )

    def _get_image(self, image_id: int) -> _Image:
        try:
            return self.images[int(image_id)]
        except KeyError:
            raise KeyError(f"no image {image_id} in this replica") from None

    # -- JSON API ------------------------------------------------------------------------------

    def _json(self, ctx: RequestContext, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        ctx.send_bytes(
            body, "application/json", status=status, headers={"X-OMERO-ApiVersion": API_VERSION}
        )

    def _not_found(self, ctx: RequestContext, kind: str, object_id: str | int) -> None:
        # omero-web's json_response keeps the traceback of a NotFoundError
        message = f"{kind} {object_id} not found"
        trace = (
            'Traceback (most recent call last):\n  File "omeroweb/api/views.py", line 149, '
            f'in get\n    raise NotFoundError("%s %s" % (self.OMERO_TYPE, object_id))\n'
            f"omeroweb.api.api_exceptions.NotFoundError: {message}\n"
        )
        self._json(ctx, {"message": message, "stacktrace": trace}, status=404)

    def _api_versions(self, ctx: RequestContext) -> None:
        self._json(ctx, {"data": [{"version": API_VERSION, "url:base": f"{ctx.base_url}/api/v0/"}]})

    def _api_base(self, ctx: RequestContext) -> None:
        b = f"{ctx.base_url}/api/v0"
        self._json(
            ctx,
            {
                "url:experimenters": f"{b}/m/experimenters/",
                "url:experimentergroups": f"{b}/m/experimentergroups/",
                "url:projects": f"{b}/m/projects/",
                "url:datasets": f"{b}/m/datasets/",
                "url:images": f"{b}/m/images/",
                "url:screens": f"{b}/m/screens/",
                "url:plates": f"{b}/m/plates/",
                "url:rois": f"{b}/m/rois/",
                "url:token": f"{b}/token/",
                "url:servers": f"{b}/servers/",
                "url:login": f"{b}/login/",
                "url:save": f"{b}/m/save/",
                "url:schema": f"{SCHEMA}/ome.xsd",
            },
        )

    def _image(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            self._not_found(ctx, "Image", ctx.match.group("id"))
            return
        data = _image_json(image, channels=True)
        b = f"{ctx.base_url}/api/v0/m"
        data["url:datasets"] = f"{b}/images/{image.id}/datasets/"
        data["url:rois"] = f"{b}/images/{image.id}/rois/"
        self._json(ctx, {"data": data})

    def _images_list(self, ctx: RequestContext) -> None:
        try:
            offset, limit = _paging(ctx)
            if ctx.match.groupdict().get("id") is not None:
                dataset: int | None = int(ctx.match.group("id"))
            else:
                raw = ctx.param("dataset")
                dataset = None if raw is None else int(raw)
        except ValueError as err:
            self._json(ctx, {"message": str(err)}, status=400)
            return
        if dataset is None:
            ids = list(self.images)
        else:
            ds = self.datasets.get(dataset)
            ids = ds.images if ds is not None else []
        images = sorted((self.images[i] for i in ids), key=lambda im: (im.name.lower(), im.id))
        page = images[offset : offset + limit] if limit else []
        b = f"{ctx.base_url}/api/v0/m"
        data = []
        for image in page:
            item = _image_json(image, channels=False)
            item["url:image"] = f"{b}/images/{image.id}/"
            item["url:datasets"] = f"{b}/images/{image.id}/datasets/"
            data.append(item)
        meta = {"offset": offset, "limit": limit, "maxLimit": MAX_LIMIT, "totalCount": len(images)}
        self._json(ctx, {"data": data, "meta": meta})

    def _dataset(self, ctx: RequestContext) -> None:
        ds = self.datasets.get(int(ctx.match.group("id")))
        if ds is None:
            self._not_found(ctx, "Dataset", ctx.match.group("id"))
            return
        b = f"{ctx.base_url}/api/v0/m"
        data = _dataset_json(ds)
        data["url:images"] = f"{b}/datasets/{ds.id}/images/"
        data["url:projects"] = f"{b}/datasets/{ds.id}/projects/"
        self._json(ctx, {"data": data})

    def _image_datasets(self, ctx: RequestContext) -> None:
        try:
            offset, limit = _paging(ctx)
        except ValueError as err:
            self._json(ctx, {"message": str(err)}, status=400)
            return
        image = self.images.get(int(ctx.match.group("id")))
        found = [self.datasets[image.dataset]] if image is not None else []
        b = f"{ctx.base_url}/api/v0/m"
        data = []
        for ds in found[offset : offset + limit]:
            item = _dataset_json(ds)
            item["url:images"] = f"{b}/datasets/{ds.id}/images/"
            item["url:dataset"] = f"{b}/datasets/{ds.id}/"
            item["url:projects"] = f"{b}/datasets/{ds.id}/projects/"
            data.append(item)
        meta = {"offset": offset, "limit": limit, "maxLimit": MAX_LIMIT, "totalCount": len(found)}
        self._json(ctx, {"data": data, "meta": meta})

    def _dataset_projects(self, ctx: RequestContext) -> None:
        ds_id = int(ctx.match.group("id"))
        found = [_project_json()] if ds_id == DATASET_ID else []
        b = f"{ctx.base_url}/api/v0/m"
        for item in found:
            item["url:datasets"] = f"{b}/projects/{PROJECT_ID}/datasets/"
            item["url:project"] = f"{b}/projects/{PROJECT_ID}/"
        meta = {
            "offset": 0,
            "limit": DEFAULT_LIMIT,
            "maxLimit": MAX_LIMIT,
            "totalCount": len(found),
        }
        self._json(ctx, {"data": found, "meta": meta})

    def _project(self, ctx: RequestContext) -> None:
        if int(ctx.match.group("id")) != PROJECT_ID:
            self._not_found(ctx, "Project", ctx.match.group("id"))
            return
        data = _project_json()
        data["url:datasets"] = f"{ctx.base_url}/api/v0/m/projects/{PROJECT_ID}/datasets/"
        self._json(ctx, {"data": data})

    # -- webclient / webgateway ----------------------------------------------------------------

    def _img_data(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            ctx.handler.send_error_text(404, f"Image {ctx.match.group('id')} not found")
            return
        marshal = self._image_marshal(image)
        key = ctx.match.group("key")
        if key:
            if key not in marshal:
                ctx.handler.send_error_text(404, f"No such key: {key}")
                return
            self._json(ctx, marshal[key])
        else:
            self._json(ctx, marshal)

    def _image_marshal(self, image: _Image) -> dict[str, Any]:
        z, y, x = image.size_zyx
        ds = self.datasets[image.dataset]
        in_project = ds.id == DATASET_ID
        lo, hi = image.window
        return {
            "id": image.id,
            "meta": {
                "imageName": image.name,
                "imageDescription": "",
                "imageAuthor": "Public User",
                "imageArchived": True,
                "projectName": _project_json()["Name"] if in_project else "Multiple",
                "projectId": PROJECT_ID if in_project else None,
                "projectDescription": "",
                "datasetName": ds.name,
                "datasetId": ds.id,
                "datasetDescription": ds.description,
                "wellSampleId": "",
                "wellId": "",
                "imageTimestamp": 1591747200.0,
                "imageId": image.id,
                "pixelsType": image.pixels_type,
            },
            "perms": {"canAnnotate": False, "canEdit": False, "canDelete": False, "canLink": False},
            "tiles": False,
            "interpolate": True,
            "size": {"width": x, "height": y, "z": z, "t": 1, "c": 1},
            "pixel_size": {"x": image.voxel_um, "y": image.voxel_um, "z": image.voxel_um},
            "init_zoom": 0,
            "pixel_range": [0, 255],
            "channels": [
                {
                    "emissionWave": None,
                    "label": "0",
                    "color": "FFFFFF",
                    "inverted": False,
                    "reverseIntensity": False,
                    "family": "linear",
                    "coefficient": 1.0,
                    "window": {"min": 0.0, "max": 255.0, "start": lo, "end": hi},
                    "active": True,
                }
            ],
            "split_channel": {
                "g": {"width": x + 4, "height": y + 4, "border": 2, "gridx": 1, "gridy": 1},
                "c": {"width": x + 4, "height": y + 4, "border": 2, "gridx": 1, "gridy": 1},
            },
            "rdefs": {
                "model": "greyscale",
                "projection": "normal",
                "defaultZ": z // 2,
                "defaultT": 0,
                "invertAxis": False,
            },
        }

    def _file_paths(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            ctx.handler.send_error_text(404, f"Image {ctx.match.group('id')} not found")
            return
        self._json(ctx, self.original_file_paths(image.id))

    def original_file_paths(self, image_id: int) -> dict[str, list[str]]:
        """What ``/webgateway/original_file_paths/{id}/`` answers, in ``file_paths_form``.

        ``"managed"`` (IDR's real form): ``repo`` is the managed-repository path (OMERO's
        template ``<user>_<id>/<yyyy-mm>/<dd>/<hh-mm-ss.sss>/<name>``, relative to the
        repository), ``client`` the import-time path without its leading slash; IDR imported
        in place from ``/uod/idr/filesets/``, so the client path is the one that maps.
        ``"repository"``: both under ``/uod/idr/filesets/`` (an in-place repository).
        ``"unmapped"``: neither lies under ``/uod/idr/filesets/``.
        """
        image = self._get_image(image_id)
        rel = image.file or f"synthetic/{image.name}"
        managed = f"demo_52/2020-06/10/14-03-22.{image.id % 1000:03d}/{image.name}"
        if self.file_paths_form == "repository":
            return {"repo": [f"/uod/idr/filesets/{rel}"], "client": [f"uod/idr/filesets/{rel}"]}
        if self.file_paths_form == "unmapped":
            return {"repo": [managed], "client": [f"nfs/bioimage/drop/{rel}"]}
        return {"repo": [managed], "client": [f"uod/idr/filesets/{rel}"]}

    def _plane(self, image: _Image, z: int) -> np.ndarray | None:
        if image.file is None:
            return np.zeros(image.size_zyx[1:], np.uint8)
        if not 0 <= z < image.size_zyx[0]:
            return None
        if image.id == IMAGE_ID:
            return self._volume.read((slice(z, z + 1), slice(None), slice(None)))[0]
        return self._volume.read((slice(None), slice(z, z + 1), slice(None)))[:, 0, :]

    def _render(self, ctx: RequestContext, plane: np.ndarray, image: _Image) -> None:
        import imagecodecs

        lo, hi = _window(ctx.param("c"), image.window)
        grey = np.clip((plane.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255)
        grey = grey.astype(np.uint8)  # one grey channel: the same in colour mode (m=c)
        try:
            quality = float(ctx.param("q") or 0.9)
        except ValueError:
            quality = 0.9
        body = imagecodecs.jpeg8_encode(grey, level=round(min(max(quality, 0.0), 1.0) * 100))
        ctx.send_bytes(bytes(body), "image/jpeg")

    def _render_image(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            ctx.handler.send_error_text(404, f"Image {ctx.match.group('id')} not found")
            return
        z = int(ctx.match.group("z") or image.size_zyx[0] // 2)
        plane = self._plane(image, z)
        if plane is None:
            ctx.handler.send_error_text(404, f"Plane z={z} of image {image.id} does not exist")
            return
        self._render(ctx, plane, image)

    def _render_region(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            ctx.handler.send_error_text(404, f"Image {ctx.match.group('id')} not found")
            return
        plane = self._plane(image, int(ctx.match.group("z")))
        if plane is None:
            ctx.handler.send_error_text(404, "Plane does not exist")
            return
        height, width = plane.shape
        try:
            box = _region_box(ctx.param("region"), ctx.param("tile"), width, height)
        except ValueError as err:
            ctx.handler.send_error_text(400, str(err))
            return
        x, y, w, h = box
        self._render(ctx, plane[y : y + h, x : x + w], image)

    def _render_thumbnail(self, ctx: RequestContext) -> None:
        image = self.images.get(int(ctx.match.group("id")))
        if image is None:
            ctx.handler.send_error_text(404, f"Image {ctx.match.group('id')} not found")
            return
        plane = self._plane(image, image.size_zyx[0] // 2)
        assert plane is not None
        longest = int(ctx.match.group("w") or 96)
        step = max(1, math.ceil(max(plane.shape) / max(1, longest)))
        self._render(ctx, plane[::step, ::step], image)


# -- JSON encoders (omero-marshal shapes) --------------------------------------------------------


def _details() -> dict[str, Any]:
    return {
        "@type": "TBD#Details",
        "owner": {
            "@id": 2,
            "@type": f"{SCHEMA}#Experimenter",
            "FirstName": "Public",
            "LastName": "User",
            "UserName": "public",
            "omero:details": {"@type": "TBD#Details"},
        },
        "group": {
            "@id": 3,
            "@type": f"{SCHEMA}#ExperimenterGroup",
            "Name": "Public",
            "Description": "Public data",
            "omero:details": {"@type": "TBD#Details"},
        },
        "permissions": {
            "@type": "TBD#Permissions",
            "perm": "rwr---",
            "canAnnotate": False,
            "canDelete": False,
            "canEdit": False,
            "canLink": False,
            "isGroupAnnotate": False,
            "isGroupRead": True,
            "isGroupWrite": False,
            "isUserRead": True,
            "isUserWrite": True,
            "isWorldRead": False,
            "isWorldWrite": False,
        },
    }


def _length(value_um: float) -> dict[str, Any]:
    return {"@type": "TBD#LengthI", "Unit": "MICROMETER", "Symbol": "µm", "Value": value_um}


def _enum(type_name: str, enum_id: int, value: str) -> dict[str, Any]:
    return {
        "@id": enum_id,
        "@type": f"TBD#{type_name}",
        "value": value,
        "omero:details": {"@type": "TBD#Details"},
    }


def _image_json(image: _Image, *, channels: bool) -> dict[str, Any]:
    z, y, x = image.size_zyx
    pixels: dict[str, Any] = {
        "@id": image.id + 10_000_000,
        "@type": f"{SCHEMA}#Pixels",
        "SizeX": x,
        "SizeY": y,
        "SizeZ": z,
        "SizeC": 1,
        "SizeT": 1,
        "PhysicalSizeX": _length(image.voxel_um),
        "PhysicalSizeY": _length(image.voxel_um),
        "PhysicalSizeZ": _length(image.voxel_um),
        "Type": _enum("PixelsType", 6, image.pixels_type),
        "DimensionOrder": _enum("DimensionOrder", 1, "XYZCT"),
        "SignificantBits": 8 * np.dtype(image.pixels_type).itemsize,
        "omero:details": _details(),
    }
    if channels:
        pixels["Channels"] = [
            {
                "@id": image.id + 20_000_000,
                "@type": f"{SCHEMA}#Channel",
                "Color": -1,
                "SamplesPerPixel": 1,
                "omero:LogicalChannelId": image.id + 30_000_000,
                "omero:details": _details(),
            }
        ]
    return {
        "@id": image.id,
        "@type": f"{SCHEMA}#Image",
        "Name": image.name,
        "omero:archived": False,
        "omero:partial": False,
        "omero:series": 0,
        "omero:format": _enum("Format", 113, "Tiff"),
        "omero:details": _details(),
        "Pixels": pixels,
    }


def _dataset_json(ds: _Dataset) -> dict[str, Any]:
    return {
        "@id": ds.id,
        "@type": f"{SCHEMA}#Dataset",
        "Name": ds.name,
        "Description": ds.description,
        "omero:details": _details(),
    }


def _project_json() -> dict[str, Any]:
    return {
        "@id": PROJECT_ID,
        "@type": f"{SCHEMA}#Project",
        "Name": "idr0086-miron-micrographs/experimentD",
        "Description": "Chromatin arranges in chains of mesoscale domains (Miron et al. 2020)",
        "omero:details": _details(),
    }


def _int_param(ctx: RequestContext, name: str, default: int) -> int:
    """``int(value)`` as omero-web's ``getIntOrDefault``: a ValueError on a non-integer."""
    raw = ctx.param(name)
    return default if raw is None else int(raw)


def _paging(ctx: RequestContext) -> tuple[int, int]:
    """(offset, limit) as omero-web's ``validate_opts``: default 200, clamped to 500."""
    offset = _int_param(ctx, "offset", 0)
    limit = _int_param(ctx, "limit", -1)
    if limit < 0:
        limit = DEFAULT_LIMIT
    return max(0, offset), min(limit, MAX_LIMIT)


def _window(c: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """The first channel's ``start:end`` of a rendering ``c`` parameter (``1|85:153$hilo.lut``)."""
    if c:
        m = re.match(r"-?\d+\|(-?[\d.]+):(-?[\d.]+)", c.split(",")[0])
        if m:
            return float(m.group(1)), float(m.group(2))
    return default


def _region_box(
    region: str | None, tile: str | None, width: int, height: int
) -> tuple[int, int, int, int]:
    """(x, y, w, h) of ``region=x,y,w,h`` or ``tile=level,col,row[,w,h]``, clipped to the plane."""
    if region:
        parts = [int(float(v)) for v in region.split(",")]
        if len(parts) != 4:
            raise ValueError("region must be x,y,w,h")
        x, y, w, h = parts
    elif tile:
        parts = [int(float(v)) for v in tile.split(",")]
        if len(parts) not in (3, 5):
            raise ValueError("tile must be level,col,row[,w,h]")
        w, h = (parts[3], parts[4]) if len(parts) == 5 else (256, 256)
        if w > MAX_TILE or h > MAX_TILE:
            raise ValueError(f"Tile size must be <= {MAX_TILE}")
        x, y = parts[1] * w, parts[2] * h
    else:
        raise ValueError("tile or region argument required")
    x, y = max(0, min(x, width - 1)), max(0, min(y, height - 1))
    w, h = max(1, min(w, width - x)), max(1, min(h, height - y))
    return x, y, w, h
