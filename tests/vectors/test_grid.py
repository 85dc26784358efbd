"""The patch grid: level choice, physical size, centres in level-0 voxels, 2-D and 3-D."""

from __future__ import annotations

import numpy as np
import pytest

from emingest.errors import ConfigError
from emingest.vectors import create_embedder
from emingest.vectors.encoder import PatchEncoder, cut_patches
from emingest.vectors.grid import LevelInfo, choose_level, plan_grid

PYRAMID = [
    LevelInfo("s0", (64, 1024, 1024), (4.0, 4.0, 4.0)),
    LevelInfo("s1", (32, 512, 512), (8.0, 8.0, 8.0)),
    LevelInfo("s2", (16, 256, 256), (16.0, 16.0, 16.0)),
]


def grid(levels=PYRAMID, **kw):
    args = dict(
        embedder_px=64,
        patch_nm=512.0,
        stride_nm=None,
        slice_every=0,
        mode="2d",
        tile_bytes=1 << 20,
        itemsize=1,
    )
    return plan_grid(levels, **{**args, **kw})


def test_the_level_nearest_the_patch_resolution_is_read() -> None:
    assert choose_level(PYRAMID, 8.0) == 1
    assert choose_level(PYRAMID, 5.0) == 0  # 5/4 is nearer than 8/5
    assert choose_level(PYRAMID, 100.0) == 2
    assert choose_level([LevelInfo("s0", (1, 1, 1), None)], 8.0) == 0
    g = grid()
    assert (g.level, g.patch_px, g.stride_px, g.factor) == (1, (1, 64, 64), (64, 64, 64), (2, 2, 2))
    assert g.counts == (1, 8, 8)  # every 64th slice of 32: one slice, centred
    assert g.origin == (15, 0, 0)


def test_centres_are_level0_voxels_and_nm() -> None:
    g = grid(slice_every=8)
    assert g.counts == (4, 8, 8)
    c = g.block_centers(1, 0)
    # 4 slices 8 apart span 25 of 32: origin 3; slice 1 is 11 -> level-0 z floor(11.5 * 2) = 23
    assert g.origin[0] == 3
    assert c[0, 0].tolist() == [23, 64, 64] and c[0, 1].tolist() == [23, 64, 192]
    assert g.to_nm(c[0, :1]).tolist() == [[92.0, 256.0, 256.0]]
    # a level-0 point maps back to the patch it is the centre of
    assert g.start_for_center0((23, 64, 192)) == (11, 0, 64)
    assert g.start_for_center0((0, 5000, -3)) == (0, 448, 0)  # clamped inside the level


def test_blocks_cover_the_grid_within_the_budget() -> None:
    g = grid(slice_every=8, tile_bytes=3 * 128 * 512)
    assert g.band_rows == 3
    rows = [r for _, band in g.blocks() if _ == 0 for r in g.rows(band)]
    assert rows == list(range(8))
    _, y, x = g.block_region(0, 2)
    assert (y.start, y.stop, x.start, x.stop) == (384, 512, 0, 512)
    block = np.arange(128 * 512).reshape(1, 128, 512)
    patches = cut_patches(block, g.patch_px, g.stride_px, 2, 8)
    assert patches.shape == (16, 1, 64, 64)
    np.testing.assert_array_equal(patches[9], block[:, 64:128, 64:128])


def test_anisotropic_unknown_and_3d() -> None:
    aniso = [LevelInfo("s0", (100, 512, 512), (50.0, 8.0, 8.0))]
    g = grid(aniso)
    assert g.patch_px == (1, 64, 64) and g.stride_px[0] == 10  # 512 nm / 50 nm slices
    unknown = grid([LevelInfo("s0", (10, 300, 300), None)], stride_nm=256.0)
    assert unknown.patch_px == (1, 64, 64) and unknown.stride_px == (32, 32, 32)
    assert unknown.voxel0_nm is None and unknown.to_nm(np.zeros((1, 3))) is None
    cubes = grid(mode="3d")
    assert cubes.patch_px == (64, 64, 64) and cubes.counts == (0, 0, 0)  # 32 slices < a cube
    small = grid(patch_nm=128.0, mode="3d")
    assert small.level == 0 and small.patch_px == (32, 32, 32) and small.counts == (2, 32, 32)
    with pytest.raises(ConfigError):
        grid(mode="4d")


def test_3d_patches_of_a_2d_embedder_are_three_planes() -> None:
    enc = PatchEncoder(create_embedder("scattering", {"size": 32}), mode="3d", patch_nm=256)
    assert enc.dim == 3 * 217 and enc.space.params["input"] == "orthogonal-planes"
    cubes = np.random.default_rng(0).standard_normal((2, 16, 16, 16)).astype(np.float32)
    out = enc.encode(cubes)
    assert out.shape == (2, 3 * 217) and np.isfinite(out).all()
    flat = PatchEncoder(create_embedder("scattering", {"size": 32}), mode="2d", patch_nm=256)
    assert flat.space.key != enc.space.key
