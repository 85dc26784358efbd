"""Settings resolution: defaults < TOML file < environment < overrides, errors, TOML round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emingest.config import Settings, env_overrides, load_settings
from emingest.config_toml import settings_to_toml
from emingest.errors import ConfigError, EmingestError

TOML = """
[storage]
data_root = "/from/toml"
zstd_level = 5
chunk_shape = [64, 64, 64]

[pipeline]
workers = 3
tile_bytes = 1000
concurrent_volumes = 7

[sources.empiar]
base_url = "http://toml.invalid/"
timeout = 10
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "emingest.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


def test_defaults_without_file_env_or_overrides() -> None:
    s = load_settings(environ={})
    assert s == Settings()
    assert s.storage.data_root == Path("data")
    assert s.storage.shard_shape is None


def test_toml_file_beats_defaults(config_file: Path) -> None:
    s = load_settings(config_file, environ={})
    assert s.storage.data_root == Path("/from/toml")
    assert s.storage.zstd_level == 5
    assert s.storage.chunk_shape == (64, 64, 64)
    assert s.pipeline.workers == 3
    assert s.pipeline.tile_bytes == 1000
    assert s.source_section("empiar") == {"base_url": "http://toml.invalid/", "timeout": 10}
    # keys the file does not name keep their defaults
    assert s.storage.keep_raw is Settings().storage.keep_raw
    assert s.logging == Settings().logging


def test_env_beats_toml_and_keeps_siblings(config_file: Path) -> None:
    environ = {
        "EMINGEST_PIPELINE__WORKERS": "4",
        "EMINGEST_STORAGE__CHUNK_SHAPE": "[8, 16, 32]",
        "EMINGEST_STORAGE__DATA_ROOT": "/from/env",  # not JSON: kept as text
        "EMINGEST_SOURCES__EMPIAR__TIMEOUT": "2.5",
        "EMINGEST_STORAGE__KEEP_RAW": "false",
        "OTHER_PIPELINE__WORKERS": "99",  # not our prefix
        "EMINGEST_NOSECTION": "1",  # no section: ignored
    }
    s = load_settings(config_file, environ=environ)
    assert s.pipeline.workers == 4
    assert s.storage.chunk_shape == (8, 16, 32)
    assert s.storage.data_root == Path("/from/env")
    assert s.storage.keep_raw is False
    # deep merge: the TOML values next to the overridden ones survive
    assert s.pipeline.tile_bytes == 1000
    assert s.storage.zstd_level == 5
    assert s.source_section("empiar") == {"base_url": "http://toml.invalid/", "timeout": 2.5}


def test_overrides_beat_env_and_toml(config_file: Path) -> None:
    environ = {"EMINGEST_PIPELINE__WORKERS": "4", "EMINGEST_PIPELINE__TILE_BYTES": "2000"}
    overrides = {"pipeline": {"workers": 5}, "storage": {"max_levels": 2}}
    s = load_settings(config_file, environ=environ, overrides=overrides)
    assert s.pipeline.workers == 5  # override > env > toml
    assert s.pipeline.tile_bytes == 2000  # env > toml
    assert s.pipeline.concurrent_volumes == 7  # toml only
    assert s.storage.max_levels == 2
    assert s.storage.zstd_level == 5


def test_explicit_environ_ignores_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMINGEST_PIPELINE__WORKERS", "17")
    assert load_settings(environ={}).pipeline.workers == Settings().pipeline.workers
    assert load_settings().pipeline.workers == 17


def test_env_overrides_parses_json_and_nests() -> None:
    got = env_overrides(
        {
            "EMINGEST_SOURCES__IDR__BASE_URL": "http://x",
            "EMINGEST_STORAGE__SHARD_SHAPE": "[2, 4, 6]",
            "EMINGEST_STORAGE__ZSTD_LEVEL": "9",
            "PATH": "/bin",
        }
    )
    assert got == {
        "sources": {"idr": {"base_url": "http://x"}},
        "storage": {"shard_shape": [2, 4, 6], "zstd_level": 9},
    }


def test_invalid_toml_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[storage\nzstd_level = ", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml") as info:
        load_settings(path, environ={})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, EmingestError)


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml"):
        load_settings(tmp_path / "nothere.toml", environ={})


@pytest.mark.parametrize(
    ("toml", "environ", "overrides"),
    [
        ("[storage]\nzstd_level = 99\n", {}, {}),  # out of range
        ("[storage]\nchunk_shape = [0, 1, 1]\n", {}, {}),  # axis < 1
        ("[storage]\nno_such_key = 1\n", {}, {}),  # extra keys are forbidden
        ("[nosection]\nx = 1\n", {}, {}),
        ("", {"EMINGEST_PIPELINE__WORKERS": "many"}, {}),
        ("", {"EMINGEST_PIPELINE__WORKERS": "0"}, {}),
        ("", {}, {"storage": {"max_levels": 0}}),
        ("", {}, {"storage": {"shard_shape": [1, 2]}}),
    ],
)
def test_invalid_values_raise_config_error(
    tmp_path: Path, toml: str, environ: dict[str, str], overrides: dict
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ, overrides=overrides)
    assert isinstance(info.value, ValueError)
    assert "c.toml" in str(info.value)


def _round_trip(settings: Settings) -> tuple[str, Settings]:
    text = settings_to_toml(settings)
    return text, Settings.model_validate(tomllib.loads(text))


def test_toml_round_trip_defaults() -> None:
    s = Settings()
    text, back = _round_trip(s)
    assert back == s
    # None fields are written as comments, so the file still parses and they stay unset
    assert "# shard_shape = (unset)" in text
    assert "# max_levels = (unset)" in text
    assert "shard_shape" not in tomllib.loads(text)["storage"]


def test_toml_round_trip_non_defaults(tmp_path: Path) -> None:
    s = load_settings(
        environ={},
        overrides={
            "storage": {
                "data_root": 'C:\\data\\"quoted" dir',
                "chunk_shape": [32, 64, 128],
                "shard_shape": [64, 128, 256],
                "zstd_level": -3,
                "max_levels": 4,
                "keep_raw": False,
            },
            "pipeline": {"workers": 9, "tile_bytes": 12345, "concurrent_volumes": 3},
            "logging": {"log_dir": str(tmp_path / "lögs"), "level": "DEBUG"},
            "sources": {
                "empiar": {"base_url": "https://x.invalid/", "timeout": 2.5, "retries": 3},
                "idr": {"verify": True, "hosts": ["a", "b"], "sizes": [1, 2.5]},
            },
        },
    )
    text, back = _round_trip(s)
    assert back == s
    # ... and through the file loader, which is how users pass it back in
    path = tmp_path / "shown.toml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path, environ={}) == s


def test_toml_round_trip_quotes_keys() -> None:
    s = load_settings(
        environ={},
        overrides={"sources": {"empiar": {"connections_per_host": {"ftp.ebi.ac.uk": 4}}}},
    )
    _, back = _round_trip(s)
    assert back == s


def test_toml_round_trip_escapes_control_characters() -> None:
    s = load_settings(
        environ={}, overrides={"sources": {"idr": {"note": "two\nlines", "bell": "\x07"}}}
    )
    _, back = _round_trip(s)
    assert back == s


def test_toml_round_trip_list_of_tables() -> None:
    s = load_settings(
        environ={},
        overrides={"sources": {"idr": {"mirrors": [{"url": "http://a.invalid", "weight": 2}]}}},
    )
    _, back = _round_trip(s)
    assert back == s


def test_toml_round_trip_escapes_delete() -> None:
    s = load_settings(environ={}, overrides={"sources": {"x": {"k\x7f": "a\x7fb"}}})
    _, back = _round_trip(s)
    assert back == s


# Text TOML can carry (not U+007F, see above; no lone surrogates, which Python cannot encode).
_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x7f"), max_size=8)
_scalar = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), _text
)
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_section = st.recursive(
    st.dictionaries(_text, _value, max_size=4),
    lambda inner: st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(sources=st.dictionaries(_text, _section, max_size=3))
def test_toml_round_trip_any_source_sections(sources: dict) -> None:
    s = load_settings(environ={}, overrides={"sources": sources})
    _, back = _round_trip(s)
    assert back == s


def test_global_transport_applies_to_every_file_source_and_sources_override_keys(
    tmp_path: Path,
) -> None:
    from emingest.sources.empiar import EmpiarSource
    from emingest.sources.epfl import EpflSource

    path = tmp_path / "c.toml"
    path.write_text(
        "[storage]\n"
        f"data_root = {str(tmp_path)!r}\n"
        "[transport]\nper_host_connections = 2\nstall_timeout_s = 7.0\n"
        "[sources.epfl.transport]\nstall_timeout_s = 9.0\n",
        encoding="utf-8",
    )
    s = load_settings(path, environ={"EMINGEST_TRANSPORT__ATTEMPTS": "3"})
    epfl, empiar = EpflSource(s), EmpiarSource(s)
    try:
        assert epfl.options.transport.per_host_connections == 2  # global
        assert epfl.options.transport.stall_timeout_s == 9.0  # its own key wins
        assert epfl.options.transport.attempts == 3  # global, from the environment
        assert empiar.options.transport.stall_timeout_s == 7.0
        assert empiar.options.transport.per_host_connections == 2
    finally:
        epfl.close()
        empiar.close()


def test_invalid_global_transport_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="per_host_connections"):
        load_settings(environ={}, overrides={"transport": {"per_host_connections": 0}})


def test_an_unknown_executor_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="'threads' or 'dask'"):
        load_settings(environ={}, overrides={"pipeline": {"executor": "tcp://h:8786"}})


def test_dask_executor_and_scheduler_from_the_environment() -> None:
    env = {
        "EMINGEST_PIPELINE__EXECUTOR": "dask",
        "EMINGEST_PIPELINE__SCHEDULER": "tcp://10.0.0.5:8786",
    }
    s = load_settings(environ=env)
    assert s.pipeline.executor == "dask"
    assert s.pipeline.scheduler == "tcp://10.0.0.5:8786"
    assert load_settings(environ={}).pipeline.scheduler == "local"
    with pytest.raises(ConfigError, match="tcp://host:8786"):
        load_settings(environ={}, overrides={"pipeline": {"scheduler": "myhost:8786"}})


def test_dask_executor_without_the_extra_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'emingest\[dask\]'"):
        load_settings(environ={"EMINGEST_PIPELINE__EXECUTOR": "dask"})


def test_an_s3_data_root_keeps_its_url_and_takes_the_standard_endpoint_variable() -> None:
    s = load_settings(
        environ={"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_ACCESS_KEY_ID": "k"},
        overrides={"storage": {"data_root": "s3://bucket/some/prefix/"}},
    )
    assert s.storage.data_root == "s3://bucket/some/prefix"
    root = s.storage.root()
    assert root.url == "s3://bucket/some/prefix" and not root.is_local
    assert root.kvstore("a.ome.zarr/s0") == {
        "driver": "s3",
        "bucket": "bucket",
        "path": "some/prefix/a.ome.zarr/s0/",
        "aws_region": "us-east-1",
        "endpoint": "http://minio:9000",
        "aws_credentials": {"type": "environment"},
    }
    # what cannot live in a bucket goes to a local work folder
    assert s.storage.local_root == Path.home() / ".cache/emingest/s3/bucket/some/prefix"
    assert s.log_dir == s.storage.local_root / "logs"
    # an explicit endpoint wins over the variable
    s2 = load_settings(
        environ={"AWS_ENDPOINT_URL": "http://minio:9000"},
        overrides={"storage": {"data_root": "s3://b", "s3_endpoint_url": "http://other:1"}},
    )
    assert s2.storage.root().kvstore("x")["endpoint"] == "http://other:1"
    assert s2.storage.root().kvstore("x")["path"] == "x/"


@pytest.mark.parametrize("bad", ["s3://", "s3://b/../x", "ftp://host/x", "gs://bucket/x"])
def test_a_data_root_url_that_is_not_s3_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(environ={}, overrides={"storage": {"data_root": bad}})


def test_a_local_data_root_is_still_a_path() -> None:
    s = load_settings(environ={"AWS_ENDPOINT_URL": "http://x"}, overrides={})
    assert s.storage.data_root == Path("data") and s.storage.local_root == Path("data")
    assert s.storage.root().local_path == Path("data")
