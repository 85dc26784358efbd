"""Decompression bombs and absurd headers are refused before any pixel is decoded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tifffile

from emingest.errors import ConversionError
from emingest.formats.limits import DecodeLimits
from emingest.formats.tiff import TiffVolume
from emingest.testing.hostile import deflate_bomb

MiB = 1 << 20


def test_the_bomb_is_small_and_claims_1e12_pixels(tmp_path: Path) -> None:
    bomb = deflate_bomb(tmp_path / "bomb.tif")
    assert bomb.stat().st_size < 1024
    with tifffile.TiffFile(bomb) as tif:
        assert tif.series[0].shape == (1_000_000, 1_000_000)
        assert tif.pages.first.compression == 8


def test_deflate_bomb_is_refused_naming_file_and_claimed_size(tmp_path: Path) -> None:
    bomb = deflate_bomb(tmp_path / "bomb.tif")
    with pytest.raises(ConversionError) as caught:
        TiffVolume(bomb)
    message = str(caught.value)
    assert str(bomb) in message
    assert "1000000 x 1000000" in message
    assert "max_plane_bytes" in message


def test_a_plane_within_limits_but_too_compressed_is_refused(tmp_path: Path) -> None:
    bomb = deflate_bomb(tmp_path / "ratio.tif", width=20_000, length=20_000)  # 400 MB from 84 B
    with pytest.raises(ConversionError, match="compression ratio"):
        TiffVolume(bomb, limits=DecodeLimits(max_decode_bytes=1 << 30))
    with pytest.raises(ConversionError, match="max_decode_bytes"):
        TiffVolume(bomb, limits=DecodeLimits(max_decode_bytes=64 * MiB))


def test_genuine_compressed_tiffs_still_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, size=(3, 64, 80), dtype=np.uint8)
    data[1] = 0  # a blank slice compresses far, but is small
    path = tmp_path / "ok.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack", rowsperstrip=8)
    vol = TiffVolume(path)
    try:
        region = (slice(0, 3), slice(0, 64), slice(0, 80))
        assert np.array_equal(vol.read(region), data)
    finally:
        vol.close()


def test_absurd_volume_is_refused_by_its_setting(tmp_path: Path) -> None:
    data = np.zeros((4, 16, 16), np.uint8)
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(ConversionError, match="max_volume_bytes"):
        TiffVolume(path, limits=DecodeLimits(max_volume_bytes=1000))


BOMB_CHILD = """
import json, sys
from emingest.config import load_settings
from emingest.pipeline import Pipeline, VolumeJob
from emingest.sources import create_source
settings = load_settings(environ={}, overrides={"storage": {"data_root": sys.argv[2]}})
source = create_source("local", settings)
(ref,) = source.discover([sys.argv[1]])
with Pipeline(settings) as pipe:
    (result,) = pipe.run([VolumeJob(source, ref)])
def status(key):
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith(key + ":")).split()[1]) * 1024
# VmHWM, not ru_maxrss (which a forked child inherits from a large parent such as pytest),
# less the shared libraries' file pages (their residency follows the page cache, not us)
peak = status("VmHWM") - status("RssFile")
print(json.dumps({"status": result.status, "peak": peak}))
"""


def test_ingesting_the_bomb_fails_fast_with_low_memory(tmp_path: Path) -> None:
    bomb = deflate_bomb(tmp_path / "bomb.tif")
    proc = subprocess.Popen(
        [sys.executable, "-c", BOMB_CHILD, str(bomb), str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watched = psutil.Process(proc.pid)
    sampled = 0
    while proc.poll() is None:  # psutil's view from outside, besides the child's own peak
        try:
            sampled = max(sampled, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["status"].startswith("error: ConversionError: ")
    assert "refused before decoding" in answer["status"]
    assert "1000000 x 1000000" in answer["status"]
    assert "unexpected failure" not in err
    assert answer["peak"] < 512 * MiB, answer["peak"]  # the bomb alone took 2.7-3.0 GiB
    assert sampled < 512 * MiB
