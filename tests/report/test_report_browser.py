"""The report in headless Chromium (Debian's ``chromium`` package; CI installs it): the page loads
offline without a console error, holds one row per sample, sorts on a mouse click and on Enter,
runs none of the captions' HTML, shows its frames, and its screenshot is not blank."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from chromium_cdp import CHROMIUM, Browser, screenshot
from PIL import Image

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing (apt-get install chromium; see the README's Tests section)",
)

ROWS = "[...document.querySelectorAll('#sample-table tbody tr')].map(r => r.dataset.id)"


def _header(col: int) -> str:
    return f"#sample-table th[data-col='{col}'] > button"


def _sort_state(browser: Browser, col: int) -> str:
    return browser.evaluate(
        f"document.querySelector(\"#sample-table th[data-col='{col}']\").getAttribute('aria-sort')"
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


def test_page_loads_offline_without_errors(browser, hand_report):
    browser.open(hand_report.as_uri())
    # every image of the first two samples, once scrolled into view, decodes
    loaded = browser.evaluate(
        """(async () => {
            const imgs = [...document.querySelectorAll('#s00000 img, #s00001 img')];
            for (const img of imgs) { img.scrollIntoView(); await img.decode(); }
            return imgs.map(i => [i.naturalWidth, i.naturalHeight]);
        })()"""
    )
    assert loaded == [[64, 48]] * 8
    assert browser.problems() == []
    urls = browser.requested_urls()
    assert urls and all(u.startswith(hand_report.parent.as_uri() + "/") for u in urls), urls
    assert browser.evaluate("typeof window.__xss") == "undefined"  # the caption stayed text
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0


def test_one_row_per_sample_and_sorting(browser, hand_report):
    browser.open(hand_report.as_uri())
    assert browser.evaluate(ROWS) == ["q1", "q2", "q3"]
    # column 4 is run A's vIoU: q1 1/2, q2 0, q3 1 (conftest.py)
    browser.click(_header(4))
    assert browser.evaluate(ROWS) == ["q2", "q1", "q3"]
    assert _sort_state(browser, 4) == "ascending"
    browser.click(_header(4))
    assert browser.evaluate(ROWS) == ["q3", "q1", "q2"]
    assert _sort_state(browser, 4) == "descending"
    # the keyboard: Enter on the focused header of B - A vIoU (column 10): q1 -1/6, q2 1/2,
    # q3 -1/2
    browser.press_enter(_header(10))
    assert browser.evaluate(ROWS) == ["q3", "q1", "q2"]
    assert _sort_state(browser, 10) == "ascending" and _sort_state(browser, 4) == "none"
    browser.press_enter(_header(1))  # sample id, text
    browser.press_enter(_header(1))
    assert browser.evaluate(ROWS) == ["q3", "q2", "q1"]
    status = browser.evaluate("document.getElementById('sort-status').textContent")
    assert status == "Sorted by sample, descending."
    # the run toggle hides run B's boxes and spans
    visible = "getComputedStyle(document.querySelector('#s00000 rect.box.run-1')).display"
    assert browser.evaluate(visible) != "none"
    browser.click("input[data-run-toggle='1']")
    assert browser.evaluate(visible) == "none"
    assert browser.problems() == []


def test_screenshot_is_not_blank(hand_report, tmp_path):
    png = tmp_path / "page.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    screenshot(hand_report.as_uri(), png, profile)
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20  # text, tables and frames, not one flat color
    # the green GT bar of the first timeline is on screen somewhere
    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    assert np.sum((rgb[:, 1] > 200) & (rgb[:, 0] < 40) & (rgb[:, 2] < 40)) > 500


def test_sample_count_on_a_synthetic_set(browser, synth_report):
    browser.open(synth_report.as_uri())
    annotations = json.loads((synth_report.parent.parent / "data" / "test.json").read_text())
    ids = [s["sample_id"] for s in annotations["samples"]]
    assert browser.evaluate(ROWS) == ids
    assert browser.evaluate("document.querySelectorAll('article.sample').length") == len(ids)
    assert browser.problems() == []


@pytest.fixture(scope="module")
def synth_report(tmp_path_factory) -> Path:
    from stvg.data.synth import synthesize
    from stvg.report import build_report

    root = tmp_path_factory.mktemp("browser_synth")
    synthesize(root / "data", videos=6, seconds=2.0, fps=10.0, size=(96, 72), progress=False)
    samples = json.loads((root / "data" / "test.json").read_text())["samples"]
    preds = {
        s["sample_id"]: {"tube": [s["tube"][0] + 1, s["tube"][1]], "boxes": s["boxes"]}
        for s in samples
    }
    doc = {"format": "stvg-predictions/1", "predictions": preds}
    (root / "pred.json").write_text(json.dumps(doc))
    return build_report(
        root / "data" / "test.json", [root / "pred.json"], root / "out", progress=False
    )
