"""The report in a real headless Chromium: it renders every image and logs no console error.

Skipped when Chromium, its driver or selenium is missing. ``python -m tests.report.test_browser
REPORT PNG [ANCHOR]`` screenshots a report, or one section of it (docs/report.png comes from
the demo's report, docs/report-explain.png from its ``explain`` section).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.report.test_explained import explained_sets
from tests.serve.test_browser import CHROMIUM, DRIVER, FLAGS


def open_report(path: Path) -> Any:
    """A headless Chromium showing ``path``, with its console log collected."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, "--window-size=1200,1600"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="deepmetric-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.profile = profile  # removed by close()
    driver.get(path.resolve().as_uri())
    return driver


def close(driver: Any) -> None:
    driver.quit()
    shutil.rmtree(driver.profile, ignore_errors=True)


def test_report_renders_without_console_errors(tmp_path: Path) -> None:
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {DRIVER}")
    from deepmetric.report import build_report

    before, after, explain = explained_sets()
    page = build_report(tmp_path / "report.html", history=[{"epoch": 1, "loss": 0.5}],
                        before=before, after=after, config={"loss": "supcon"},
                        projection="pca", explain=explain)  # fmt: skip
    driver = open_report(page)
    try:
        images = driver.execute_script(
            "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert images and all(images)
        pairs = driver.execute_script(
            "return [...document.querySelectorAll('.explained img')].map(i => i.naturalWidth)"
        )
        assert pairs and all(width > 300 for width in pairs)  # two panels side by side
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        assert "deepmetric run" in driver.title
    finally:
        close(driver)


if __name__ == "__main__":
    browser = open_report(Path(sys.argv[1]))
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1200, min(int(height), 4000))
    if len(sys.argv) > 3:
        from selenium.webdriver.common.by import By

        browser.find_element(By.ID, sys.argv[3]).screenshot(sys.argv[2])
    else:
        browser.save_screenshot(sys.argv[2])
    print("console errors:", [e for e in browser.get_log("browser") if e["level"] == "SEVERE"])
    close(browser)
