"""A Gatan DigitalMicrograph 3 (DM3) writer, for the EMPIAR replica's slices.

Writes what GMS 3 writes for an SBF-SEM (3View) slice such as EMPIAR-11759's
``F57-8_test1_3VBSED_slice_0000.dm3`` (archives.md §2.1): a big-endian header (version 3,
``file size - 16``, byte-order flag 1 = little-endian data), a big-endian tag tree whose data
tags carry ``%%%%`` type information, and an ``ImageList`` of two images -- ``ImageList.0`` a
192 x 192 RGBA thumbnail (DataType 23, PixelDepth 4, listed under ``Thumbnails``) and
``ImageList.1`` the image itself, calibrated in µm, with the slice thickness only in the
vendor tags ``SBFSEM.Record.Slice thickness`` and ``Meta Data.Dimension info``. The file ends
with 8 zero bytes, as GMS files do. Our reader side uses rosettasciio; this module is test
code and reads nothing::

    >>> import numpy as np
    >>> raw = encode_dm3(np.zeros((5, 7), np.uint8))
    >>> raw[:4].hex(), raw[8:12].hex()  # version 3, little-endian tag data
    ('00000003', '00000001')
    >>> int.from_bytes(raw[4:8], "big") == len(raw) - 16, raw[-8:] == bytes(8)
    (True, True)

Tag values map to DM types as follows: ``dict`` -> named tag group, ``list`` -> group of
unnamed tags, ``bool`` -> bool (8), ``int`` -> long (3), ``float`` -> double (7), ``str`` ->
array of ushort (UTF-16 code units, as DM stores text), ``tuple`` -> struct, a numpy scalar ->
its own type (``np.float32`` -> float (6), ``np.uint32`` -> ulong (5) ...), a 1-D numpy array
-> array of its element type.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_PIXEL_SIZE_UM",
    "THUMBNAIL_SIZE",
    "encode_dm3",
    "write_dm3",
]

DEFAULT_PIXEL_SIZE_UM = 0.0079982504
"""EMPIAR-11759's calibration (stored as float32: 0.007998250424861908 µm, about 8 nm)."""
THUMBNAIL_SIZE = 192

_GROUP, _DATA = 20, 21
_STRUCT, _ARRAY = 15, 20
_SIMPLE: dict[str, int] = {
    # numpy dtype kind+size -> DM encoded type
    "i2": 2,
    "i4": 3,
    "u2": 4,
    "u4": 5,
    "f4": 6,
    "f8": 7,
    "b1": 8,
    "i1": 9,
    "u1": 10,
}
# numpy image dtype -> ImageData.DataType (ImageData.Data is an array of the matching element)
_IMAGE_TYPES: dict[str, int] = {
    "int16": 1,
    "float32": 2,
    "uint8": 6,
    "int32": 7,
    "int8": 9,
    "uint16": 10,
    "uint32": 11,
    "float64": 12,
}
_RGBA_DATATYPE = 23


def encode_dm3(
    image: np.ndarray,
    *,
    pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM,
    slice_thickness_nm: float | None = 50.0,
    thumbnail: bool = True,
    extra_tags: Mapping[str, Any] | None = None,
    name: str = "3VBSED_slice_0000",
) -> bytes:
    """The bytes of a DM3 file holding ``image`` (y, x); see :func:`write_dm3`."""
    chunks, size = _encode(
        image,
        pixel_size_um=pixel_size_um,
        slice_thickness_nm=slice_thickness_nm,
        thumbnail=thumbnail,
        extra_tags=extra_tags,
        name=name,
    )
    out = b"".join(chunks)
    assert len(out) == size
    return out


def write_dm3(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM,
    slice_thickness_nm: float | None = 50.0,
    thumbnail: bool = True,
    extra_tags: Mapping[str, Any] | None = None,
    name: str | None = None,
    version: int = 3,
) -> Path:
    """Write ``image`` (y, x; uint8, uint16, int16, int8, (u)int32, float32/64) as a DM3 file.

    ``pixel_size_um`` calibrates both axes (float32, µm, as GMS stores it);
    ``slice_thickness_nm`` goes to the SBF-SEM tags (None leaves them out); ``thumbnail`` adds
    the 192 x 192 RGBA ``ImageList.0``; ``extra_tags`` is merged into the image's
    ``ImageTags`` (nested dicts merge, other values replace). ``name`` defaults to the file
    stem from the detector name on (``3VBSED_slice_0000``), as GMS names 3View slices. Tag data
    is little-endian (byte-order flag 1, as GMS writes on PCs). Written to a temporary file in
    the same folder, then renamed. ``version=4`` writes the DM4 layout (64-bit counts and
    sizes) of the same tag tree.
    """
    if version not in (3, 4):
        raise ValueError(f"DM version 3 or 4, not {version}")
    path = Path(path)
    if name is None:
        stem = path.stem
        name = stem[stem.index("3VBSED") :] if "3VBSED" in stem else stem
    chunks, _ = _encode(
        image,
        pixel_size_um=pixel_size_um,
        slice_thickness_nm=slice_thickness_nm,
        thumbnail=thumbnail,
        extra_tags=extra_tags,
        name=name,
        version=version,
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- the tag tree -------------------------------------------------------------------------------


def _encode(
    image: np.ndarray,
    *,
    pixel_size_um: float,
    slice_thickness_nm: float | None,
    thumbnail: bool,
    extra_tags: Mapping[str, Any] | None,
    name: str,
    version: int = 3,
) -> tuple[list[bytes], int]:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"a DM3 slice is 2-D (y, x), got shape {image.shape}")
    if image.dtype.name not in _IMAGE_TYPES:
        raise ValueError(f"unsupported dtype {image.dtype}; use one of {sorted(_IMAGE_TYPES)}")

    images: list[dict[str, Any]] = []
    if thumbnail:
        images.append(_thumbnail_entry(image, name))
    images.append(_image_entry(image, pixel_size_um, slice_thickness_nm, extra_tags, name))
    root: dict[str, Any] = {
        "DocumentObjectList": [
            {
                "AnnotationType": 20,
                "BackgroundMode": 2,
                "FillMode": 1,
                "HasBackground": False,
                "ImageDisplayInfo": {
                    "Brightness": np.float32(0.5),
                    "CLUTName": "Greyscale",
                    "Contrast": np.float32(0.5),
                    "ContrastMode": 1,
                    "Gamma": np.float32(0.5),
                    "HighLimit": np.float32(np.max(image)),
                    "IsInverted": False,
                    "LowLimit": np.float32(np.min(image)),
                    "MainSliceId": [0],
                },
                "ImageDisplayType": 1,
                "ImageSource": 0,
                "IsMoveable": True,
                "IsSelectable": True,
                "IsVisible": True,
                "UniqueID": 8,
            }
        ],
        "HasWindowPosition": True,
        "Image Behavior": {"IsZoomedToWindow": True, "ViewDisplayID": 8},
        "ImageList": images,
        "ImageSourceList": [
            {"ClassName": "ImageSource:Simple", "Id": [0], "ImageRef": len(images) - 1}
        ],
        "InImageMode": True,
        "LayoutType": "Unknown",
        "MinVersionList": [{"RequiredVersion": 50659328}],
        "NextDocumentObjectID": 11,
        "Page Behavior": {
            "DrawMargins": True,
            "DrawPaper": True,
            "IsFixedInPageMode": False,
            "IsZoomedToWindow": True,
            "LayedOut": False,
            "RestoreImageDisplayID": 8,
            "TargetDisplayID": np.uint32(4294967295),
        },
    }
    if thumbnail:
        root["Thumbnails"] = [
            {
                "ImageIndex": 0,
                "SourceSize_Pixels": (np.int32(image.shape[1]), np.int32(image.shape[0])),
            }
        ]

    chunks = list(_group_body(root, version == 4))
    body = sum(len(c) for c in chunks)
    trailer = b"\x00" * 8
    if version == 4:
        # version, rootlen (64-bit), byte order: 16 bytes
        total = 16 + body + len(trailer)
        return [struct.pack(">lQl", 4, total - 24, 1), *chunks, trailer], total
    total = 12 + body + len(trailer)
    # rootlen = file size - 16 (what GMS writes and DM3 readers check); byte order 1 = little.
    header = struct.pack(">lLl", 3, total - 16, 1)
    return [header, *chunks, trailer], total


def _image_entry(
    image: np.ndarray,
    pixel_size_um: float,
    slice_thickness_nm: float | None,
    extra_tags: Mapping[str, Any] | None,
    name: str,
) -> dict[str, Any]:
    height, width = image.shape
    datatype = _IMAGE_TYPES[image.dtype.name]
    tags: dict[str, Any] = {
        "DataBar": {
            "Acquisition Date": "11.06.2018",
            "Acquisition Time": "22:27:16",
            "Device Name": "DigiScan",
            "Exposure Number": 897131,
            "Signal Name": "3VBSED",
        },
        "DigiScan": {
            "Flyback": np.float32(60.0),
            "Image Height": height,
            "Image Width": width,
            "Rotation": 0.0,
            "Sample Time": 0.5,
            "Signal Index": 1,
            "Zoom factor": 0.7,
        },
        "GMS Version": {"Created": "3.21.1374.0", "Saved": "3.21.1374.0"},
        "Meta Data": {"Format": "Image", "Signal": "DigiScan"},
        "Microscope Info": {
            "Formatted Indicated Mag": "2.2kx",
            "Formatted Voltage": "1.9kV",
            "Illumination Mode": "SEM",
            "Imaging Mode": "IMAGING",
            "Indicated Magnification": 2159.0,
            "Name": "FEI Quanta",
            "Operation Mode": "SCANNING",
            "Stage Position": {
                "Stage X": 79.26780559398513,
                "Stage Y": -773.6633039403846,
                "Stage Z": 21.049806806776274,
            },
            "Voltage": 1900.0,
        },
        "Session Info": {"Detector": "3VBSED", "Microscope": "", "Operator": "", "Specimen": ""},
    }
    if slice_thickness_nm is not None:
        # GMS keeps the z step only here: "Dimension info" holds three unnamed groups of which
        # only the third (z) is filled, which DM3lib/ncempy show as "Dimension info.2.Scale".
        tags["Meta Data"] = {
            "Dimension info": [
                {},
                {},
                {"Origin": 0.0, "Scale": float(slice_thickness_nm), "Units": "nm"},
            ],
            **tags["Meta Data"],
        }
        tags["SBFSEM"] = {
            "Imaging": {
                "Record pixel size": round(pixel_size_um * 1000.0, 3),
                "Record scan height": height,
                "Record scan width": width,
            },
            "Record": {
                "Base file name": "C:\\Users\\replica\\F57\\F57-8\\test1\\F57-8_test1",
                "Slice number": 250,
                "Slice thickness": float(slice_thickness_nm),
            },
        }
    if extra_tags:
        tags = _merge(tags, extra_tags)
    scale = np.float32(pixel_size_um)
    return {
        "Description": f"pixel size : \u2028{pixel_size_um:.4f}µm x {pixel_size_um:.4f}µm\u2028",
        "ImageData": {
            "Calibrations": {
                "Brightness": {"Origin": np.float32(0.0), "Scale": np.float32(1.0), "Units": ""},
                "Dimension": [
                    {"Origin": np.float32(0.0), "Scale": scale, "Units": "µm"},
                    {"Origin": np.float32(0.0), "Scale": scale, "Units": "µm"},
                ],
                "DisplayCalibratedUnits": True,
            },
            "Data": image,
            "DataType": datatype,
            "Dimensions": [np.uint32(width), np.uint32(height)],
            "PixelDepth": np.uint32(image.dtype.itemsize),
        },
        "ImageTags": tags,
        "Name": name,
        "UniqueID": [np.uint32(v) for v in _unique_id(name)],
    }


def _thumbnail_entry(image: np.ndarray, name: str) -> dict[str, Any]:
    h, w = image.shape
    rows = np.linspace(0, h - 1, THUMBNAIL_SIZE).round().astype(np.intp)
    cols = np.linspace(0, w - 1, THUMBNAIL_SIZE).round().astype(np.intp)
    small = image[np.ix_(rows, cols)].astype(np.float64)
    lo, hi = float(small.min()), float(small.max())
    grey = np.zeros_like(small) if hi == lo else (small - lo) * (255.0 / (hi - lo))
    g = grey.round().astype(np.uint32)
    # DataType 23 is packed RGBA: bytes B, G, R, A in file order (one little-endian ulong).
    rgba = g | (g << 8) | (g << 16) | np.uint32(0xFF000000)
    return {
        "ImageData": {
            "Calibrations": {
                "Brightness": {"Origin": np.float32(0.0), "Scale": np.float32(1.0), "Units": ""},
                "Dimension": [
                    {"Origin": np.float32(0.0), "Scale": np.float32(1.0), "Units": ""},
                    {"Origin": np.float32(0.0), "Scale": np.float32(1.0), "Units": ""},
                ],
                "DisplayCalibratedUnits": True,
            },
            "Data": rgba,
            "DataType": _RGBA_DATATYPE,
            "Dimensions": [np.uint32(THUMBNAIL_SIZE), np.uint32(THUMBNAIL_SIZE)],
            "PixelDepth": np.uint32(4),
        },
        "ImageTags": {"GMS Version": {"Created": "3.21.1374.0"}},
        "Name": f"Image Of {name}",
        "UniqueID": [np.uint32(v) for v in _unique_id("thumb" + name)],
    }


def _unique_id(seed: str) -> list[int]:
    rng = np.random.default_rng(list(seed.encode()))
    return [int(v) for v in rng.integers(1, 2**31 - 1, size=4)]


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# -- encoding ---------------------------------------------------------------------------------


def _group_body(value: dict[str, Any] | list[Any], v4: bool = False) -> Iterator[bytes]:
    """A tag group: is_sorted, is_open, count, then the entries (named for dicts).

    DM4 (``v4``) widens counts and type-info words to 64 bits and puts before each entry's
    content its length in bytes (64-bit), which DM3 does not have."""
    items: list[tuple[str, Any]]
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items() if v is not None]
        sorted_flag = 1
    else:
        items = [("", v) for v in value if v is not None]
        sorted_flag = 0
    yield struct.pack(">BBQ" if v4 else ">BBL", sorted_flag, 0, len(items))
    for label, item in items:
        raw = label.encode("latin-1")
        kind = _GROUP if isinstance(item, (dict, list)) else _DATA
        content = _group_body(item, v4) if kind == _GROUP else _data(item, v4)
        if v4:
            body = b"".join(content)
            yield struct.pack(">BH", kind, len(raw)) + raw + struct.pack(">Q", len(body)) + body
        else:
            yield struct.pack(">BH", kind, len(raw)) + raw
            yield from content


def _data(value: Any, v4: bool = False) -> Iterator[bytes]:
    """A data tag: '%%%%', the big-endian type-info words, then the value, little-endian."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value).reshape(-1)
        little = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        yield _info(v4, [_ARRAY, _element_type(arr.dtype), arr.size])
        yield arr.astype(little, copy=False).tobytes()
        return
    if isinstance(value, str):
        units = value.encode("utf-16-le")  # DM text: an array of ushort code units
        yield _info(v4, [_ARRAY, 4, len(units) // 2]) + units
        return
    if isinstance(value, tuple):
        fields = [_scalar(v) for v in value]
        info = [_STRUCT, 0, len(fields)]
        for dm_type, _ in fields:
            info += [0, dm_type]
        yield _info(v4, info) + b"".join(payload for _, payload in fields)
        return
    dm_type, payload = _scalar(value)
    yield _info(v4, [dm_type]) + payload


def _info(v4: bool, words: list[int]) -> bytes:
    word = "Q" if v4 else "L"
    return b"%%%%" + struct.pack(f">{word}{len(words)}{word}", len(words), *words)


def _element_type(dtype: np.dtype[Any]) -> int:
    key = f"{dtype.kind}{dtype.itemsize}"
    if key not in _SIMPLE:
        raise TypeError(f"no DM3 array element type for {dtype}")
    return _SIMPLE[key]


def _scalar(value: Any) -> tuple[int, bytes]:
    """(DM type, little-endian bytes) of one simple value."""
    if isinstance(value, (bool, np.bool_)):
        return 8, struct.pack("B", 1 if value else 0)
    if isinstance(value, np.generic):
        dtype = value.dtype
        little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        return _element_type(dtype), np.asarray(value, little).tobytes()
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return 3, struct.pack("<l", value)
        if 0 <= value < 2**32:
            return 5, struct.pack("<L", value)
        raise OverflowError(f"DM3 has no 64-bit integers; {value} does not fit 32 bits")
    if isinstance(value, float):
        return 7, struct.pack("<d", value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a DM3 tag")
