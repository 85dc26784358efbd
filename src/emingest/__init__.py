"""emingest: public EM archives into OME-Zarr, a catalog and vectors.

The SDK is imported lazily so ``import emingest`` stays light:

>>> import emingest
>>> vol = emingest.open("epfl/ca1-hippocampus/volumedata")     # doctest: +SKIP
>>> rows = emingest.catalog(source="epfl", status="complete")   # doctest: +SKIP
>>> remote = emingest.Client("http://127.0.0.1:8000")            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from emingest._version import __version__

_LAZY = {
    "open": ("emingest.volume", "open_volume"),
    "Volume": ("emingest.volume", "Volume"),
    "Client": ("emingest.client", "Client"),
}


def __getattr__(name: str) -> Any:
    if name == "catalog":  # the package, callable: see emingest.catalog._CallableCatalogModule
        import importlib

        return importlib.import_module("emingest.catalog")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'emingest' has no attribute {name!r}")


__all__ = ["Client", "Volume", "__version__", "catalog", "open"]
