"""The source registry: built-ins by name, a clear error for unknown names."""

from __future__ import annotations

import pytest

from emingest.config import Settings
from emingest.errors import ConfigError
from emingest.sources import (
    BUILTIN_SOURCES,
    available_sources,
    create_source,
    get_source_class,
)
from emingest.sources.local import LocalSource


def test_unknown_source_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="no-such-archive") as info:
        get_source_class("no-such-archive")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for name in available_sources():
        assert name in message
    assert "local" in message


def test_create_unknown_source_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="known sources"):
        create_source("nope", Settings())


def test_local_resolves() -> None:
    assert available_sources()["local"] == BUILTIN_SOURCES["local"]
    assert get_source_class("local") is LocalSource
    source = create_source("local", Settings())
    assert isinstance(source, LocalSource)
    assert source.name == "local"


def test_every_listed_source_imports() -> None:
    for name in available_sources():
        cls = get_source_class(name)
        assert isinstance(cls, type)
        assert cls.name == name  # every source declares the key it is registered under
