"""Random patches for training: the numpy sampler and the PyTorch dataset with 2 workers."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from emingest.config import Settings
from emingest.errors import ConfigError
from emingest.patches import PatchSampler, choose_level
from emingest.testing.epfl import EPFLReplica
from emingest.volume import open_volume

TRAINING = "epfl/ca1-hippocampus/training"


def test_patches_match_the_archive_and_labels_align(
    served: Settings, epfl_replica: EPFLReplica
) -> None:
    raw = tifffile.imread(epfl_replica.folder / "training.tif")
    mask = tifffile.imread(epfl_replica.folder / "training_groundtruth.tif")
    sampler = PatchSampler(
        [TRAINING], patch_shape=(4, 16, 24), with_labels=True, n_samples=20, seed=3, settings=served
    )
    corners = set()
    for patch in sampler:
        z, y, x = patch.corner
        box = np.s_[z : z + 4, y : y + 16, x : x + 24]
        np.testing.assert_array_equal(patch.raw, raw[box])
        np.testing.assert_array_equal(patch.labels, mask[box])
        corners.add(patch.corner)
    assert len(corners) > 10  # random, not one place


def test_same_seed_same_patches_other_seed_others(served: Settings) -> None:
    a = PatchSampler([TRAINING], patch_shape=(2, 8, 8), n_samples=5, seed=7, settings=served)
    b = PatchSampler([TRAINING], patch_shape=(2, 8, 8), n_samples=5, seed=7, settings=served)
    c = PatchSampler([TRAINING], patch_shape=(2, 8, 8), n_samples=5, seed=8, settings=served)
    assert [p.corner for p in a] == [p.corner for p in b] != [p.corner for p in c]
    assert b[4].corner == a[4].corner  # item i depends on (seed, i) only


def test_physical_scale_picks_the_level(served: Settings) -> None:
    vol = open_volume(TRAINING, settings=served)
    assert choose_level(vol, 5) == 0 and choose_level(vol, 10) == 1 and choose_level(vol, 11) == 1
    sampler = PatchSampler(
        [TRAINING], patch_nm=(40, 160, 160), scale_nm=10, n_samples=3, settings=served
    )
    patch = sampler[0]
    assert patch.level == 1 and patch.raw.shape == (4, 16, 16)


def test_filters_choose_images_not_labels(served: Settings) -> None:
    sampler = PatchSampler(
        filters={"source": "epfl"},
        patch_shape=(1, 32, 32),
        with_labels=True,
        n_samples=50,
        settings=served,
    )
    assert {s.volume.id for s in sampler.sources} == {TRAINING, "epfl/ca1-hippocampus/testing"}
    assert "epfl/ca1-hippocampus/volumedata (no labels)" in sampler.skipped


def test_bad_arguments_are_config_errors(served: Settings) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        PatchSampler([TRAINING], n_samples=1, settings=served)
    with pytest.raises(ConfigError, match="smaller than"):
        PatchSampler([TRAINING], patch_shape=(99, 8, 8), settings=served)


def test_torch_dataloader_with_two_workers(served: Settings, epfl_replica: EPFLReplica) -> None:
    from emingest.torch import PatchDataset

    ds = PatchDataset(
        [TRAINING], patch_shape=(2, 16, 16), with_labels=True, n_samples=12, seed=5, settings=served
    )
    batches = list(ds.loader(batch_size=4, num_workers=2))
    raw = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert raw.shape == (12, 1, 2, 16, 16) and raw.dtype == np.float32
    assert labels.shape == (12, 1, 2, 16, 16)
    # the same items as the single-process numpy sampler: workers reopened the same stores
    expected = [ds.sampler[i] for i in range(12)]
    np.testing.assert_array_equal(raw[:, 0], np.stack([p.raw for p in expected]).astype(np.float32))
    np.testing.assert_array_equal(labels[:, 0], np.stack([p.labels for p in expected]))
