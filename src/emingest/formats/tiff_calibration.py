"""The voxel size a TIFF states, from every standard place, and where it was found.

Read in this order, the first that gives a pixel size wins (each says more than the next):

1. OME-XML ``Pixels/@PhysicalSize{X,Y,Z}`` with their units (default µm);
2. ImageJ's description (``unit``, ``spacing``) with X/YResolution (pixels per unit);
3. FEI/Thermo Fisher SEM/FIB tags (``FEI_HELIOS`` 34682, ``FEI_SFEG`` 34680, parsed by
   tifffile into INI sections): ``[Scan] PixelWidth/PixelHeight`` in metres;
4. Zeiss SEM (``CZ_SEM`` 34118, parsed by tifffile into ``{key: (name, value, unit)}``):
   ``ap_image_pixel_size`` or ``ap_pixel_size``;
5. baseline X/YResolution with ResolutionUnit: centimetre (3), inch (2), and tifffile's
   millimetre (4) and micrometre (5). ResolutionUnit NONE (1) carries no length. An inch value
   of a whole number of dots up to 1200 (72, 96, 300: what image software writes when it
   knows nothing) is a print setting, not a calibration, and is ignored; an inch-calibrated
   EM pixel is millions of dots per inch.

Only OME and ImageJ can state the slice spacing; otherwise z is taken equal to x and the
origin says so. Any size that is zero, negative or not finite counts as none.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import tifffile

from emingest.formats.units import nm_per
from emingest.voxel_size import VoxelSize, plausible_voxel_size

Calibration = tuple[VoxelSize | None, str, dict[str, Any]]
"""(voxel size z, y, x in nm or None, where it came from, header fields to keep)."""

_NM_PER_RESOLUTION_UNIT = {2: 25.4e6, 3: 1e7, 4: 1e6, 5: 1e3}
_RESOLUTION_UNIT_NAMES = {1: "NONE", 2: "INCH", 3: "CENTIMETER", 4: "MILLIMETER", 5: "MICROMETER"}
_PRINT_DPI_MAX = 1200
_Z_AS_X = "z assumed equal to x (the file states no slice spacing)"


def _pixels_per_unit(tag: Any) -> float | None:
    try:
        num, den = tag.value
        return float(num) / float(den) if den else None
    except (TypeError, ValueError):
        return None


def _with_z(yx: tuple[float, float], z: float | None) -> VoxelSize | None:
    y, x = yx
    return plausible_voxel_size((x if z is None else z, y, x))


def ome_calibration(tif: tifffile.TiffFile) -> Calibration:
    xml = tif.ome_metadata or ""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, "", {"ome_xml": xml}
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    if pixels is None:
        return None, "", {"ome_xml": xml}
    sizes: dict[str, float | None] = {}
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = nm_per(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        try:
            sizes[axis] = None if value is None or factor is None else float(value) * factor
        except ValueError:
            sizes[axis] = None
    header = {"ome_pixels": dict(pixels.attrib)}
    y, x = sizes["Y"], sizes["X"]
    if y is None or x is None:
        return None, "", header
    voxel = _with_z((y, x), sizes["Z"])
    origin = "OME-XML PhysicalSize*" + ("" if sizes["Z"] is not None else f"; {_Z_AS_X}")
    return voxel, origin if voxel else "", header


def imagej_calibration(tif: tifffile.TiffFile) -> Calibration:
    meta = tif.imagej_metadata or {}
    header = {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in meta.items()}
    factor = nm_per(meta.get("unit"))
    tags = tif.pages.first.tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    px = _pixels_per_unit(xres) if xres is not None else None
    py = _pixels_per_unit(yres) if yres is not None else None
    if factor is None or not px or not py:
        return None, "", header
    spacing = meta.get("spacing")
    z = float(spacing) * factor if isinstance(spacing, int | float) else None
    voxel = _with_z((factor / py, factor / px), z)
    origin = "ImageJ unit and X/YResolution" + ("; z from spacing" if z else f"; {_Z_AS_X}")
    return voxel, origin if voxel else "", header


def fei_calibration(tif: tifffile.TiffFile) -> Calibration:
    meta = tif.fei_metadata or {}
    header = {"fei_metadata": _json_safe(meta)}
    for section in ("Scan", "EScan", "IScan"):
        values = meta.get(section)
        if not isinstance(values, dict):
            continue
        width, height = (
            values.get("PixelWidth"),
            values.get("PixelHeight", values.get("PixelWidth")),
        )
        if isinstance(width, int | float) and isinstance(height, int | float):
            voxel = _with_z((float(height) * 1e9, float(width) * 1e9), None)
            if voxel:
                return (
                    voxel,
                    f"FEI/Thermo tag [{section}] PixelWidth/PixelHeight (m); {_Z_AS_X}",
                    header,
                )
    return None, "", header


def zeiss_calibration(tif: tifffile.TiffFile) -> Calibration:
    meta = tif.sem_metadata or {}
    header = {"sem_metadata": _json_safe(meta)}
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        size = _zeiss_length_nm(meta.get(key))
        if size is not None:
            voxel = _with_z((size, size), None)
            if voxel:
                return voxel, f"Zeiss SEM tag CZ_SEM {key}; {_Z_AS_X}", header
    return None, "", header


def _zeiss_length_nm(entry: Any) -> float | None:
    """``('Image Pixel Size', 2.233, 'nm')`` (tifffile's parse) or ``'2.233 nm'`` in nm."""
    if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], int | float):
        factor = nm_per(str(entry[2]))
        return None if factor is None else float(entry[1]) * factor
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str):
        parts = entry[1].split()
        if len(parts) == 2:
            factor = nm_per(parts[1])
            try:
                return None if factor is None else float(parts[0]) * factor
            except ValueError:
                return None
    return None


def resolution_calibration(tif: tifffile.TiffFile) -> Calibration:
    tags = tif.pages.first.tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # the TIFF default is inch
    if xres is None or yres is None:
        return None, "", {}
    px, py = _pixels_per_unit(xres), _pixels_per_unit(yres)
    header = {
        "resolution": [px, py],
        "resolution_unit": _RESOLUTION_UNIT_NAMES.get(unit, str(unit)),
    }
    nm = _NM_PER_RESOLUTION_UNIT.get(unit)
    if nm is None or not px or not py:
        return None, "", header
    if unit == 2 and all(float(v).is_integer() and v <= _PRINT_DPI_MAX for v in (px, py)):
        header["resolution_ignored"] = "a print setting (whole dots per inch), not a calibration"
        return None, "", header
    voxel = _with_z((nm / py, nm / px), None)
    name = _RESOLUTION_UNIT_NAMES[unit]
    return voxel, f"TIFF X/YResolution per {name}; {_Z_AS_X}" if voxel else "", header


def tiff_calibration(tif: tifffile.TiffFile) -> Calibration:
    """The first calibration found, in the order of the module docstring; the header fields
    of every place looked at are kept."""
    header: dict[str, Any] = {}
    found: Calibration | None = None
    readers = []
    if tif.is_ome:
        readers.append(ome_calibration)
    if tif.is_imagej:
        readers.append(imagej_calibration)
    if tif.is_fei:
        readers.append(fei_calibration)
    if tif.is_sem:
        readers.append(zeiss_calibration)
    readers.append(resolution_calibration)
    for read in readers:
        voxel, origin, fields = read(tif)
        header.update(fields)
        if found is None and voxel is not None:
            found = (voxel, origin, {})
    if found is None:
        return None, "", header
    return found[0], found[1], header


def _json_safe(value: Any) -> Any:
    from emingest.formats.dm3 import json_safe

    return json_safe(value)
