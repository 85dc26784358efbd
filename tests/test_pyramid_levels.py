"""The pyramid end to end: thin and anisotropic stacks, --levels, and labels that overlay
their image at every level (checked through the NGFF transforms, not through our own maths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ome_zarr_models.v05 import Image, ImageLabel

from emingest.config import Settings, load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.readers import VolumeReader
from emingest.records import resolve_in_root
from emingest.sources.base import Region, Source, VolumeInfo, VolumeRef


def store_of(res: Any) -> Path:
    """The result's OME-Zarr store: records name it relative to the data root, which is
    two folders above the record (``<root>/<source>/<id>/<name>.json``)."""
    return resolve_in_root(res.record.local_paths.volume, res.record_path.parents[2])


class ArraySource(Source):
    """A source over in-memory arrays, one per volume name."""

    name: ClassVar[str] = "array"

    def __init__(self, arrays: dict[str, np.ndarray], voxel: tuple[float, float, float] | None):
        self.arrays = arrays
        self.voxel = voxel
        self._current: np.ndarray | None = None

    def discover(self, spec: Any, **options: Any) -> list[VolumeRef]:
        return [VolumeRef("array", "a1", n) for n in self.arrays]

    def describe(self, ref: VolumeRef) -> VolumeInfo:
        a = self.arrays[ref.name]
        return VolumeInfo(ref, a.shape, a.dtype, self.voxel)

    def open(self, ref: VolumeRef) -> _Reader:
        return _Reader(self.arrays[ref.name])


class _Reader(VolumeReader):
    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype = a, a.shape, a.dtype

    def read(self, region: Region) -> np.ndarray:
        return self.a[region].copy()

    def close(self) -> None:
        pass


def settings_for(
    root: Path, chunk: int = 8, tile_bytes: int = 16 << 10, **storage: Any
) -> Settings:
    return load_settings(
        environ={},
        overrides={
            "storage": {"data_root": str(root / "data"), "chunk_shape": [chunk] * 3, **storage},
            "pipeline": {"workers": 2, "tile_bytes": tile_bytes},
            "logging": {"log_dir": str(root / "logs")},
        },
    )


def _transforms(group: zarr.Group) -> list[tuple[np.ndarray, np.ndarray]]:
    ms = dict(group.attrs)["ome"]["multiscales"][0]
    out = []
    for ds in ms["datasets"]:
        scale, translation = ds["coordinateTransformations"]
        out.append((np.array(scale["scale"]), np.array(translation["translation"])))
    return out


def _blocks_below(
    fine: tuple[np.ndarray, np.ndarray], coarse: tuple[np.ndarray, np.ndarray], shape_fine, shape
):
    """Per axis, the fine indices whose voxel centres fall inside each coarse voxel, from the
    NGFF scale and translation of both levels alone."""
    per_axis = []
    for ax in range(3):
        centres = fine[1][ax] + np.arange(shape_fine[ax]) * fine[0][ax]
        owner = np.floor((centres - coarse[1][ax]) / coarse[0][ax] + 0.5 + 1e-9).astype(int)
        assert owner.min() == 0 and owner.max() == shape[ax] - 1, "a level does not overlay"
        per_axis.append([np.flatnonzero(owner == i) for i in range(shape[ax])])
    return per_axis


def _mode(values: np.ndarray) -> int:
    v, c = np.unique(values, return_counts=True)
    return int(v[np.argmax(c)])


def check_overlay(image: zarr.Group, labels: zarr.Group) -> int:
    """Label level k is the mode, image level k the mean, of the level k-1 voxels under each
    of its voxels, as the NGFF transforms place them; both share every transform."""
    t_img, t_lab = _transforms(image), _transforms(labels)
    assert len(t_img) == len(t_lab) >= 2
    for (si, ti), (sl, tl) in zip(t_img, t_lab, strict=True):
        np.testing.assert_array_equal(si, sl)
        np.testing.assert_array_equal(ti, tl)
    for k in range(1, len(t_img)):
        lab_fine, lab = labels[f"s{k - 1}"][:], labels[f"s{k}"][:]
        img_fine, img = image[f"s{k - 1}"][:], image[f"s{k}"][:]
        assert lab.shape == img.shape
        zs, ys, xs = _blocks_below(t_lab[k - 1], t_lab[k], lab_fine.shape, lab.shape)
        for idx in np.ndindex(lab.shape):
            sel = np.ix_(zs[idx[0]], ys[idx[1]], xs[idx[2]])
            assert lab[idx] == _mode(lab_fine[sel]), (k, idx)
            assert img[idx] == np.floor(img_fine[sel].astype(np.float64).mean() + 0.5), (k, idx)
    return len(t_img)


def _ingest(st_: Settings, src: ArraySource, image: str = "em", labels: str | None = None):
    img_ref = VolumeRef("array", "a1", image)
    with Pipeline(st_) as pipe:
        [img] = pipe.run([VolumeJob(src, img_ref)])
        lab = None
        if labels is not None:
            [lab] = pipe.run([VolumeJob(src, VolumeRef("array", "a1", labels), labels_of=img_ref)])
    return img, lab


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.tuples(st.integers(1, 14), st.integers(5, 40), st.integers(5, 40)),
    voxel=st.sampled_from([None, (8.0, 8.0, 8.0), (50.0, 5.0, 5.0), (30.0, 12.0, 4.0)]),
    seed=st.integers(0, 2**16),
)
def test_label_level_k_overlays_image_level_k(
    tmp_path_factory: pytest.TempPathFactory, shape: tuple, voxel: Any, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, shape).astype(np.uint16)  # few labels: ties and majorities
    em = rng.integers(0, 256, shape).astype(np.uint8)
    root = tmp_path_factory.mktemp("overlay")
    src = ArraySource({"em": em, "gt": labels}, voxel)
    img, lab = _ingest(settings_for(root, chunk=4, tile_bytes=4 << 10), src, labels="gt")
    assert img.status == lab.status == "complete", (img.status, lab.status)
    group = zarr.open_group(store_of(img), mode="r")
    Image.from_zarr(group)
    ImageLabel.from_zarr(group["labels"]["gt"])
    check_overlay(group, group["labels"]["gt"])
    assert [s.shape for s in lab.record.scales] == [s.shape for s in img.record.scales]


def test_anisotropic_stack_end_to_end(tmp_path: Path) -> None:
    """50 x 5 x 5 nm: y and x are halved alone until they reach 40 nm; NGFF says so."""
    rng = np.random.default_rng(3)
    em = rng.integers(0, 256, (9, 70, 66)).astype(np.uint8)
    gt = rng.integers(0, 3, em.shape).astype(np.uint8)
    src = ArraySource({"em": em, "gt": gt}, (50.0, 5.0, 5.0))
    img, lab = _ingest(settings_for(tmp_path), src, labels="gt")
    assert img.status == lab.status == "complete"
    scales = img.record.scales
    assert [s.shape for s in scales] == [
        [9, 70, 66],
        [9, 35, 33],
        [9, 18, 17],
        [9, 9, 9],
        [5, 5, 5],
    ]
    assert [s.voxel_size_nm for s in scales][1:4] == [[50, 10, 10], [50, 20, 20], [50, 40, 40]]
    assert scales[4].voxel_size_nm == [100, 80, 80]
    assert scales[4].translation_nm == [25.0, 37.5, 37.5]
    group = zarr.open_group(store_of(img), mode="r")
    Image.from_zarr(group)
    assert check_overlay(group, group["labels"]["gt"]) == 5


@pytest.mark.parametrize(("levels", "count"), [(None, 4), (2, 2), (6, 6)])
def test_thin_stack_levels_setting(tmp_path: Path, levels: int | None, count: int) -> None:
    """16 x 128 x 128 with 16^3 chunks (16 x 1024 x 1024 with 128^3, scaled down): a level
    0 alone before; --levels caps or extends the count."""
    em = np.random.default_rng(1).integers(0, 256, (16, 128, 128)).astype(np.uint8)
    st_ = settings_for(tmp_path, chunk=16, tile_bytes=64 << 10, max_levels=levels)
    img, _ = _ingest(st_, ArraySource({"em": em}, None))
    assert img.status == "complete"
    shapes = [s.shape for s in img.record.scales]
    assert (
        shapes
        == [[16, 128, 128], [8, 64, 64], [4, 32, 32], [2, 16, 16], [1, 8, 8], [1, 4, 4]][:count]
    )
    group = zarr.open_group(store_of(img), mode="r")
    Image.from_zarr(group)
    assert sorted(k for k in group.array_keys()) == [f"s{k}" for k in range(count)]
    assert img.record.voxel_size_nm is None


def test_sharded_anisotropic_levels_equal_whole_downsampling(tmp_path: Path) -> None:
    """Tiles are (shard x level 1's factor) per axis: with a (1, 2, 2) factor and shards
    larger than the budget, every level still equals downsampling the level below whole."""
    from emingest.omezarr.pyramid import downsample_mean

    em = np.random.default_rng(2).integers(0, 256, (20, 70, 76)).astype(np.uint8)
    st_ = settings_for(tmp_path, tile_bytes=8 << 10, shard_shape=[16, 16, 16])
    img, _ = _ingest(st_, ArraySource({"em": em}, (40.0, 8.0, 8.0)))
    assert img.status == "complete"
    group = zarr.open_group(store_of(img), mode="r")
    expected = em
    factors = [(1, 2, 2), (1, 2, 2)]
    for k, s in enumerate(img.record.scales):
        np.testing.assert_array_equal(group[s.path][:], expected, err_msg=s.path)
        factor = factors[k] if k < len(factors) else (2, 2, 2)
        expected = downsample_mean(expected, factor)
    assert len(img.record.scales) >= 4
