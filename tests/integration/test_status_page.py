"""The status page in a real headless browser: Debian's chromium driven through its own
chromedriver (hack/deps installs both; nothing is downloaded), against ``dockzone run``.

The tests take a screenshot of the page; with DOCKZONE_SCREENSHOT=docs/status-page.png it
replaces the one the README shows (so a test run leaves the checkout as it was)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import CHROMIUM_OPTIONS, eventually, require_binary, service
from tests.servers import ROOT, Daemon

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("status-page")
    definitions = workdir / "definitions"
    definitions.mkdir()
    documents = [
        service("web", dns_name="web.shop", host="198.18.0.5", port=8080),
        service("db", dns_name="db.shop", host="198.18.0.6"),
        service("cache", dns_name="cache.shop", host="198.18.0.7", ttl=60),
    ]
    (definitions / "shop.yaml").write_text(yaml.safe_dump_all(documents))
    (definitions / "mail.yaml").write_text(
        yaml.safe_dump(service("mx", dns_name="mx", host="198.18.0.9", mail=True))
    )
    running = Daemon.start(workdir, definitions, "--docker", "off")
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = require_binary("chromium")
    driver = require_binary("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in CHROMIUM_OPTIONS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def _severe(browser: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _names(browser: webdriver.Chrome) -> list[str]:
    """The names in the table; [] while a live update is swapping it in."""
    try:
        return [
            cell.text
            for cell in browser.find_elements(By.CSS_SELECTOR, "#names table tbody td:first-child")
        ]
    except StaleElementReferenceException:
        return []


def _text(browser: webdriver.Chrome, element_id: str) -> str:
    """The text of a section; "" while a live update is swapping it in (the element found
    a moment ago is gone: a stale reference)."""
    try:
        return str(browser.find_element(By.ID, element_id).text)
    except StaleElementReferenceException:
        return ""


def test_the_page_loads_without_console_errors(daemon: Daemon, browser: webdriver.Chrome) -> None:
    browser.get(f"http://{daemon.http}/")
    assert browser.title == "dockzone status"
    eventually(lambda: "web.shop.docker." in _names(browser))
    zones = eventually(lambda: _text(browser, "zones") or False)
    assert "docker." in zones
    eventually(lambda: "files" in _text(browser, "sources"))
    eventually(lambda: browser.execute_script("return document.readyState") == "complete")
    assert _severe(browser) == []


def test_search_filters_the_names(daemon: Daemon, browser: webdriver.Chrome) -> None:
    browser.get(f"http://{daemon.http}/")
    box = browser.find_element(By.CSS_SELECTOR, "#search input[name=q]")
    box.send_keys("cache", Keys.ENTER)
    eventually(lambda: "q=cache" in browser.current_url)
    names = eventually(lambda: set(_names(browser)) or False)
    assert "cache.shop.docker." in names
    assert "web.shop.docker." not in names
    assert "db.shop.docker." not in names
    assert _severe(browser) == []


def test_a_definitions_edit_appears_without_a_reload(
    daemon: Daemon, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"http://{daemon.http}/")
    marker = browser.execute_script("window.notReloaded = true; return window.notReloaded")
    assert marker is True
    (daemon.definitions / "late.yaml").write_text(
        yaml.safe_dump(service("late", dns_name="late.shop", host="198.18.0.10"))
    )
    eventually(lambda: "late.shop.docker." in _text(browser, "passes"), timeout=15)
    eventually(lambda: "+ late.shop.docker. 30 IN A 198.18.0.10" in _text(browser, "passes"))
    eventually(lambda: "late.shop.docker." in _names(browser), timeout=10)
    assert browser.execute_script("return window.notReloaded") is True  # swapped, not loaded
    shot = Path(os.environ.get("DOCKZONE_SCREENSHOT") or tmp_path / "status-page.png")
    assert browser.save_screenshot(str(ROOT / shot)), shot
    assert _severe(browser) == []


def test_explain_shows_the_owning_file(daemon: Daemon, browser: webdriver.Chrome) -> None:
    browser.get(f"http://{daemon.http}/")
    browser.find_element(By.LINK_TEXT, "web.shop.docker.").click()
    text = eventually(lambda: _text(browser, "explanation") or False)
    assert "web.shop.docker. 30 IN A 198.18.0.5" in text
    assert "from shop.yaml#0 (servicerecord/web) spec.host" in text
    assert "from shop.yaml#0 (servicerecord/web) spec.port" in text
    assert _severe(browser) == []


def test_dockzone_status_prints_the_same_summary(daemon: Daemon) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--http", daemon.http],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "docker." in result.stdout
    assert "files" in result.stdout
    assert "last passes:" in result.stdout
    assert "problems: none" in result.stdout


def test_dockzone_status_finds_the_daemon_through_dockzone_http(
    daemon: Daemon, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKZONE_HTTP": daemon.http},
    )
    assert result.returncode == 0, result.stderr
    assert "zonefiles" in result.stdout
