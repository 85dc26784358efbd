"""Archives, one module each, behind the protocol in :mod:`emingest.sources.base`.

Built-ins are listed in one explicit map; third parties plug in through the entry-point group
``emingest.sources`` (``name = "package.module:Class"``), as zarr does for codecs.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from emingest.config import Settings
from emingest.errors import ConfigError
from emingest.sources.base import Source, VolumeInfo, VolumeReader, VolumeRef

BUILTIN_SOURCES: dict[str, str] = {
    "local": "emingest.sources.local:LocalSource",
    "idr": "emingest.sources.idr:IdrSource",
    "empiar": "emingest.sources.empiar:EmpiarSource",
    "epfl": "emingest.sources.epfl:EpflSource",
    "openorganelle": "emingest.sources.openorganelle:OpenOrganelleSource",
    "flyem": "emingest.sources.flyem:FlyEMSource",
}

ENTRY_POINT_GROUP = "emingest.sources"


def available_sources() -> dict[str, str]:
    """Name -> "module:Class" of every source: built-ins, then plug-ins (which cannot shadow)."""
    found = dict(BUILTIN_SOURCES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def get_source_class(name: str) -> type[Any]:
    known = available_sources()
    if name not in known:
        raise ConfigError(f"unknown source {name!r}; known sources: {', '.join(sorted(known))}")
    module_name, _, class_name = known[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_source(name: str, settings: Settings) -> Source:
    return get_source_class(name)(settings)


__all__ = [
    "BUILTIN_SOURCES",
    "Source",
    "VolumeInfo",
    "VolumeReader",
    "VolumeRef",
    "available_sources",
    "create_source",
    "get_source_class",
]
