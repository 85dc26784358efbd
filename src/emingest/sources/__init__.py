"""Archives, one module each, behind the contract in :mod:`emingest.sources.base`.

Built-ins are listed in one explicit map; third parties plug in through the entry-point group
``emingest.sources`` (``name = "package.module:Class"``), as zarr does for codecs. Everything
that lists sources (the ``ingest`` commands, ``run``, its preflight, ``demo``) asks here.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from emingest.config import DatasetSettings, Settings
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


def get_source_class(name: str) -> type[Source]:
    known = available_sources()
    if name not in known:
        raise ConfigError(f"unknown source {name!r}; known sources: {', '.join(sorted(known))}")
    module_name, _, class_name = known[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"source {name!r}: cannot load {known[name]}: {err}") from err
    return cls


def source_classes() -> dict[str, type[Source]]:
    """Every source's class, by name, built-ins first."""
    return {name: get_source_class(name) for name in available_sources()}


def create_source(name: str, settings: Settings) -> Source:
    return get_source_class(name)(settings)  # type: ignore[call-arg]


def default_datasets() -> list[DatasetSettings]:
    """What ``emingest run`` ingests when no ``[[datasets]]`` are configured: each source's
    own defaults, in registry order."""
    return [d for cls in source_classes().values() for d in cls.default_datasets()]


__all__ = [
    "BUILTIN_SOURCES",
    "ENTRY_POINT_GROUP",
    "Source",
    "VolumeInfo",
    "VolumeReader",
    "VolumeRef",
    "available_sources",
    "create_source",
    "default_datasets",
    "get_source_class",
    "source_classes",
]
