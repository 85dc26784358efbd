"""The web page in a real browser: Debian's Chromium driven by playwright (never
``playwright install``). Screenshots go to ``$EMINGEST_SCREENSHOTS`` or the test's tmp dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emingest.serve.loopback import ApiServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (CI installs it in .ci/run)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("EMINGEST_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_catalog_table_with_thumbnails_and_filters(api: ApiServer, page: Any, shots: Path) -> None:
    page.goto(f"{api.url}/")
    page.wait_for_selector("#records tbody tr")
    rows = page.locator("#records tbody tr")
    assert rows.count() == 5
    assert page.locator("#count").inner_text() == "5 records"
    page.wait_for_function(
        "[...document.querySelectorAll('td.thumb img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("td.thumb img").count() == 5
    assert "epfl/ca1-hippocampus/volumedata" in page.locator("#records").inner_text()
    page.screenshot(path=str(shots / "catalog.png"), full_page=True)

    page.fill("input[name=text]", "masks")
    page.click("#filters button")
    page.wait_for_function("document.querySelector('#count').textContent === '2 records'")
    assert all(
        "groundtruth" in t
        for t in page.locator("#records tbody tr td:nth-child(2)").all_inner_texts()
    )


def _canvas_mean(page: Any) -> float:
    return float(
        page.evaluate(
            """() => { const c = document.getElementById('view');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i];
                 return s / (d.length / 4); }"""
        )
    )


def test_volume_page_viewer_zoom_levels_and_metadata(
    api: ApiServer, page: Any, shots: Path
) -> None:
    page.goto(f"{api.url}/#/volume/epfl%2Fca1-hippocampus%2Fvolumedata")
    page.wait_for_selector("#view[data-loaded]")
    assert page.locator("#volume-id").inner_text() == "epfl/ca1-hippocampus/volumedata"
    meta = page.locator("#meta").inner_text()
    assert "24 × 160 × 192" in meta and "uint8" in meta and "5 × 5 × 5" in meta
    ng = page.locator("#ng-source").inner_text()
    assert ng == f"zarr3://{api.url}/data/epfl/ca1-hippocampus/volumedata.ome.zarr/"
    assert _canvas_mean(page) > 10  # the plane is drawn, not a black canvas
    assert page.locator("#view").get_attribute("data-level") == "0"
    page.screenshot(path=str(shots / "volume.png"), full_page=True)

    before = page.locator("#view").get_attribute("data-loaded")
    page.locator("#z").fill("3")
    page.wait_for_function(f"document.getElementById('view').dataset.loaded !== '{before}'")
    assert "z 3 / 23" in page.locator("#zval").inner_text()

    page.mouse.move(400, 400)
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + 320, box["y"] + 240)
    for _ in range(14):  # zoom out to 3 x 0.8^14 = 0.13 px per voxel: level 2 is chosen
        page.mouse.wheel(0, 200)
        page.wait_for_timeout(50)
    page.wait_for_function("Number(document.getElementById('view').dataset.level) >= 2")
    assert (
        "level 2" in page.locator("#levelinfo").inner_text()
        or "level 3" in page.locator("#levelinfo").inner_text()
    )


def test_click_searches_similar_patches(
    api: ApiServer, page: Any, shots: Path, embedded: Any
) -> None:
    page.goto(f"{api.url}/#/volume/epfl%2Fca1-hippocampus%2Fvolumedata")
    page.wait_for_selector("#view[data-loaded]")
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + 300, box["y"] + 200)
    page.wait_for_function(
        "!document.getElementById('search-status').textContent.startsWith('Searching') &&"
        " document.getElementById('search-status').textContent !== 'Click the image.'"
    )
    status = page.locator("#search-status").inner_text()
    page.wait_for_function(
        "[...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert "similar patches" in status and page.locator(".hit").count() > 0
    first = page.locator(".hit").first
    first.click()  # a hit links to its place: the volume page centred on it
    page.wait_for_selector("#view[data-loaded]")
    assert "#/volume/" in page.url and "z=" in page.url
    page.screenshot(path=str(shots / "search.png"), full_page=True)


def test_jobs_page_shows_live_progress(api: ApiServer, page: Any, shots: Path) -> None:
    page.goto(f"{api.url}/#/jobs")
    page.fill("#jobform input[name=source]", "epfl")
    page.fill("#jobform input[name=ids]", "testing")
    page.click("#jobform button")
    page.wait_for_selector("#jobs tbody tr")
    page.wait_for_function(
        "[...document.querySelectorAll('.job-status')].some(td => td.textContent === 'complete')",
        timeout=60_000,
    )
    row = page.locator("#jobs tbody tr").first.inner_text()
    assert "epfl testing" in row and "100%" in row
    assert "epfl/ca1-hippocampus/testing: skipped" in row  # already ingested: the pipeline skips it
    page.screenshot(path=str(shots / "jobs.png"), full_page=True)

    page.fill("#jobform input[name=source]", "nosuch")
    page.click("#jobform button")
    page.wait_for_function("document.getElementById('job-error').textContent.includes('nosuch')")
