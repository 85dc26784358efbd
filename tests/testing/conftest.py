"""Shared fixtures of the replica tests: an HTTP client that never leaves the machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """A requests session that ignores proxies and netrc from the environment."""
    with requests.Session() as s:
        s.trust_env = False
        yield s
