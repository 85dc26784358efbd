"""transports/tensorstore.py: one context, timeout and error translation for chunked archives,
configured from [transport] for OpenOrganelle and FlyEM alike."""

from __future__ import annotations

import pytest

from emingest.config import load_settings
from emingest.errors import EntryNotFoundError, RemoteFormatError, SourceError, TransientSourceError
from emingest.sources.flyem import FlyEMSource
from emingest.sources.openorganelle import OpenOrganelleSource
from emingest.transports import TransportSettings
from emingest.transports.tensorstore import context_spec, translate_error


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("UNAVAILABLE: connection reset", TransientSourceError),
        ("DEADLINE_EXCEEDED: slow", TransientSourceError),
        ("NOT_FOUND: no key", EntryNotFoundError),
        ("DATA_LOSS: bad chunk", RemoteFormatError),
        ("INVALID_ARGUMENT: bad json", RemoteFormatError),
        ("PERMISSION_DENIED: no", SourceError),
    ],
)
def test_errors_are_translated_by_their_status_code(text: str, kind: type) -> None:
    err = translate_error(ValueError(text), "s3://b/k")
    assert type(err) is kind and str(err).startswith("s3://b/k: ")


def test_context_follows_transport_settings() -> None:
    t = TransportSettings(chunk_request_concurrency=3, chunk_request_retries=2)
    spec = context_spec("s3", t)
    assert spec["s3_request_concurrency"] == {"limit": 3}
    assert spec["s3_request_retries"]["max_retries"] == 2
    assert "http_request_retries" in context_spec("http", t)
    with pytest.raises(ValueError):
        context_spec("gcs", t)


def test_both_chunked_sources_take_their_timeouts_from_transport() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "transport": {"region_timeout_s": 7.0, "chunk_request_retries": 1, "attempts": 2},
            "sources": {"flyem": {"transport": {"region_timeout_s": 9.0}}},
        },
    )
    oo = OpenOrganelleSource(settings).options.transport
    fe = FlyEMSource(settings).options.transport
    assert (oo.region_timeout_s, oo.chunk_request_retries, oo.attempts) == (7.0, 1, 2)
    assert (fe.region_timeout_s, fe.chunk_request_retries, fe.attempts) == (9.0, 1, 2)


def test_old_source_keys_still_work_and_land_in_transport() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "sources": {
                "openorganelle": {"retries": 2, "retry_backoff_s": 0.01, "region_timeout_s": 3},
                "flyem": {"http_request_concurrency": 5},
            }
        },
    )
    with pytest.warns(DeprecationWarning, match="moved to transport"):
        oo = OpenOrganelleSource(settings).options.transport
    assert (oo.attempts, oo.backoff_initial_s, oo.region_timeout_s) == (3, 0.01, 3.0)
    with pytest.warns(DeprecationWarning):
        assert FlyEMSource(settings).options.transport.chunk_request_concurrency == 5
