"""Length units as archives and file headers spell them, converted to nanometres."""

from __future__ import annotations

_NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "nanometre": 1.0,
    "µm": 1e3,
    "μm": 1e3,  # Greek mu, which some writers use instead of the micro sign
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "\\u00b5m": 1e3,  # ImageJ writes the escape literally in its description
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "ångström": 0.1,
    "pm": 1e-3,
}


def nm_per(unit: str | None) -> float | None:
    """Nanometres in one ``unit``, or None for units that carry no length (pixel, '', None)."""
    if unit is None:
        return None
    return _NM_PER_UNIT.get(unit.strip().lower())


def to_nm(value: float, unit: str | None) -> float | None:
    factor = nm_per(unit)
    return None if factor is None else float(value) * factor
