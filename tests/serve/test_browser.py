"""The search page in a real headless Chromium, against the server on a loopback port.

Skipped when Chromium, its driver or selenium is missing. With DEEPMETRIC_DOCS_SCREENSHOT=1 the
final page is saved to docs/search-page.png, and the page with a result's "why" overlay to
docs/search-why.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepmetric.index import Encoder, Index, build_index
from deepmetric.serve import create_app
from tests.index.fixtures import make_dual_model, make_shape_images

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,720",
)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, model_dir: Path, image_dir: Path) -> Iterator[str]:
    build_index(model_dir, str(image_dir), far=0.1).save(tmp_path / "idx")
    yield from _serve(tmp_path / "idx")


@pytest.fixture
def text_server(tmp_path: Path) -> Iterator[str]:
    model = make_dual_model(tmp_path / "dual")
    build_index(model, str(make_shape_images(tmp_path / "photos"))).save(tmp_path / "idx")
    yield from _serve(tmp_path / "idx")


def _serve(index: Path) -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    config = uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="error")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "the server did not start within 10 s"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {DRIVER}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="deepmetric-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_upload_shows_the_expected_top_result_and_a_click_searches_from_it(
    server: str,
    browser,
    image_dir: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    query = sorted(image_dir.rglob("*.png"))[5]
    index = Index.load(tmp_path / "idx")
    expected = next(i for i in index.items(range(len(index))) if i and i.source == str(query))
    browser.get(server + "/")
    wait.until(lambda d: "12 items" in d.find_element(By.ID, "summary").text)
    picker = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].hidden = false", picker)
    picker.send_keys(str(query))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 8)
    cards = browser.find_elements(By.CSS_SELECTOR, ".result")
    assert int(cards[0].get_attribute("data-id")) == expected.id
    assert cards[0].get_attribute("data-label") == expected.label == query.parent.name
    assert "match found" in browser.find_element(By.ID, "status").text
    wait.until(
        lambda d: d.execute_script(
            "return [...document.images].filter(i => i.closest('.result'))"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    second = int(cards[1].get_attribute("data-id"))
    cards[1].find_element(By.CSS_SELECTOR, ".why").click()  # the overlay, not a new search
    shown = (
        "return (i => i && i.complete && i.naturalWidth > 0)(document.querySelector('#why img'))"
    )
    wait.until(lambda d: d.execute_script(shown))
    figure = browser.find_element(By.CSS_SELECTOR, "#why figure")
    assert figure.get_attribute("data-target") == str(second)
    assert figure.get_attribute("data-method") == "exact"
    assert "100% accounted" in figure.text
    assert browser.find_element(By.ID, "status").text.startswith(query.name)
    if os.environ.get("DEEPMETRIC_DOCS_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        browser.save_screenshot(str(DOCS / "search-why.png"))
    cards[1].click()
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(f"Item #{second}"))
    wait.until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, ".result")[0].get_attribute("data-id") == str(second)
        )
    )
    if os.environ.get("DEEPMETRIC_DOCS_SCREENSHOT") == "1":
        browser.get(server + "/")
        wait.until(lambda d: "12 items" in d.find_element(By.ID, "summary").text)
        picker = browser.find_element(By.ID, "file")
        browser.execute_script("arguments[0].hidden = false", picker)
        picker.send_keys(str(query))
        browser.execute_script("arguments[0].hidden = true", picker)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".result")) == 8)
        time.sleep(0.5)  # let the thumbnails paint
        DOCS.mkdir(exist_ok=True)
        browser.save_screenshot(str(DOCS / "search-page.png"))


def test_a_text_query_finds_the_images_a_dual_encoder_puts_nearest(
    text_server: str,
    browser,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(text_server + "/")
    wait.until(lambda d: d.find_element(By.ID, "words").is_displayed())
    query = "a large red circle at the top"
    browser.find_element(By.ID, "text").send_keys(query, Keys.ENTER)
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("Text: 8 results"))
    _, ids = Index.load(tmp_path / "idx").search(
        Encoder(tmp_path / "dual" / "model").encode_texts([query]), 8
    )
    cards = browser.find_elements(By.CSS_SELECTOR, ".result")
    assert [int(c.get_attribute("data-id")) for c in cards] == ids[0].tolist()
    assert query in browser.find_element(By.ID, "query").text
