"""The tests every source passes, shipped like zarr's ``StoreTests``: a source's own tests
subclass :class:`SourceContractTests` and provide three fixtures.

    class TestMySource(SourceContractTests):
        @pytest.fixture
        def source(self, my_replica) -> Iterator[Source]:     # aimed at a loopback replica
            with closing(MySource(settings_for(my_replica))) as s:
                yield s

        @pytest.fixture
        def request_ok(self) -> tuple[list[str], dict]:         # names at least one volume
            return ["42"], {}

        @pytest.fixture
        def request_missing(self) -> tuple[list[str], dict]:    # well-formed, does not exist
            return ["999999"], {}

Needs pytest (the ``test`` extra). Volumes should be small: each test reads one whole.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from emingest.errors import EntryNotFoundError
from emingest.readers import VolumeReader
from emingest.regions import Region
from emingest.sources import get_source_class
from emingest.sources.base import (
    Source,
    SourceOptions,
    SourceSettings,
    VolumeInfo,
    VolumeRef,
    options_for,
)

Request = tuple[list[str], dict[str, Any]]


def octants(shape: tuple[int, int, int]) -> list[Region]:
    """The volume cut in two along every axis that has more than one voxel (up to 8 boxes)."""
    cuts = [[(0, n)] if n < 2 else [(0, n // 2), (n // 2, n)] for n in shape]
    return [tuple(slice(a, b) for a, b in box) for box in itertools.product(*cuts)]  # type: ignore[misc]


class SourceContractTests:
    """Discover, describe, open, region reads equal the whole, a missing id, close, preflight,
    and the class-level parts of the contract (registry, models, defaults)."""

    @pytest.fixture
    def source(self) -> Source:
        raise NotImplementedError("provide a `source` fixture aimed at a replica")

    @pytest.fixture
    def request_ok(self) -> Request:
        raise NotImplementedError("provide `request_ok`: (ids, options) naming a volume")

    @pytest.fixture
    def request_missing(self) -> Request:
        raise NotImplementedError("provide `request_missing`: well-formed ids that do not exist")

    # -- helpers -----------------------------------------------------------------------------

    def discovered(self, source: Source, request: Request) -> list[VolumeRef]:
        ids, options = request
        given = options_for(source, options)
        source.check_request(ids, given)
        return source.discover(ids, **given)

    # -- the class ---------------------------------------------------------------------------

    def test_is_registered_under_its_name(self, source: Source) -> None:
        assert get_source_class(source.name) is type(source)
        # subclassed explicitly, so the optional parts have their defaults
        assert Source in type(source).__mro__

    def test_models_and_description(self, source: Source) -> None:
        assert issubclass(source.options_model, SourceOptions)
        assert issubclass(source.settings_model, SourceSettings)
        for key in source.settings_flags:
            assert key in source.settings_model.model_fields, key
        assert source.description.strip(), "a one-line description for the command line"

    def test_default_datasets_are_valid_requests(self, source: Source) -> None:
        for d in type(source).default_datasets():
            assert d.source == source.name
            options = options_for(source, d.options)  # raises on an unknown option
            source.check_request(d.ids, options)

    # -- discover, describe, open ------------------------------------------------------------

    def test_discover_names_volumes_of_this_source(
        self, source: Source, request_ok: Request
    ) -> None:
        refs = self.discovered(source, request_ok)
        assert refs and all(isinstance(r, VolumeRef) for r in refs)
        assert {r.source for r in refs} == {source.name}
        assert len({(r.source_id, r.name) for r in refs}) == len(refs)
        hash(refs[0])  # refs are dictionary keys in the pipeline

    def test_describe_speaks_nm_zyx(self, source: Source, request_ok: Request) -> None:
        ref = self.discovered(source, request_ok)[0]
        info = source.describe(ref)
        assert isinstance(info, VolumeInfo) and info.ref == ref
        assert len(info.shape) == 3 and all(int(n) >= 1 for n in info.shape)
        assert isinstance(np.dtype(info.dtype), np.dtype)
        if info.voxel_size_nm is not None:
            assert len(info.voxel_size_nm) == 3
            assert all(np.isfinite(v) and v > 0 for v in info.voxel_size_nm)
        assert isinstance(info.additional_metadata, dict)

    def test_region_reads_equal_the_whole(self, source: Source, request_ok: Request) -> None:
        ref = self.discovered(source, request_ok)[0]
        info = source.describe(ref)
        reader = source.open(ref)
        try:
            assert isinstance(reader, VolumeReader)
            assert tuple(reader.shape) == tuple(info.shape)
            assert np.dtype(reader.dtype) == np.dtype(info.dtype)
            full: Region = tuple(slice(0, n) for n in info.shape)  # type: ignore[assignment]
            whole = reader.read(full)
            assert whole.shape == tuple(info.shape) and whole.dtype == np.dtype(info.dtype)
            assert whole.flags.c_contiguous and whole.dtype.isnative
            pieced = np.empty_like(whole)
            for region in octants(info.shape):
                part = reader.read(region)
                np.testing.assert_array_equal(part, whole[region])
                buffer = np.empty(part.shape, part.dtype)
                pieced[region] = reader.read_into(region, buffer)
            np.testing.assert_array_equal(pieced, whole)
        finally:
            reader.close()
            reader.close()  # closing twice is harmless

    def test_a_missing_id_raises_entry_not_found(
        self, source: Source, request_missing: Request
    ) -> None:
        ids, options = request_missing
        # discover itself, past check_request: that one may refuse a malformed id earlier
        with pytest.raises(EntryNotFoundError):
            for ref in source.discover(ids, **options_for(source, options)):
                source.describe(ref)

    def test_labels_target_is_none_or_a_ref_of_this_source(
        self, source: Source, request_ok: Request
    ) -> None:
        for ref in self.discovered(source, request_ok):
            target = source.labels_target(ref)
            assert target is None or (isinstance(target, VolumeRef) and target.source == ref.source)

    # -- preflight and close -----------------------------------------------------------------

    def test_preflight_reaches_the_archive(self, source: Source) -> None:
        check = source.preflight(timeout_s=5.0)
        assert check.source == source.name
        assert check.ok, check.detail

    def test_close_is_idempotent(self, source: Source) -> None:
        source.close()
        source.close()


__all__ = ["Request", "SourceContractTests", "octants"]
