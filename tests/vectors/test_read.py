"""Reading regions chunk column by chunk column gives exactly ``array[region]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from emingest.vectors.embed import read_by_chunks


@settings(max_examples=60, deadline=None)
@given(
    z=st.integers(0, 5),
    y=st.tuples(st.integers(0, 70), st.integers(1, 70)),
    x=st.tuples(st.integers(0, 90), st.integers(1, 90)),
)
def test_any_region_reads_exactly(tmp_path_factory, z: int, y: tuple, x: tuple) -> None:
    path: Path = tmp_path_factory.getbasetemp() / "read_by_chunks.zarr"
    if not path.exists():
        a = zarr.create_array(path, shape=(6, 71, 91), chunks=(4, 16, 32), dtype="uint16")
        a[:] = np.arange(6 * 71 * 91, dtype="uint16").reshape(6, 71, 91)
    array = zarr.open_array(path, mode="r")
    region = (slice(z, z + 1), slice(y[0], min(71, y[0] + y[1])), slice(x[0], min(91, x[0] + x[1])))
    np.testing.assert_array_equal(read_by_chunks(array, region), array[region])
