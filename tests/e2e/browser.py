"""Headless Chromium for the tests, driven by Selenium through Debian's chromedriver.

Selenium rather than ``chromium --dump-dom`` with a virtual-time budget: the test waits for
conditions on the live DOM (the page polls the admin endpoints every few seconds), with
an explicit timeout and the page's state in the failure message, instead of guessing a
budget. Both executables are passed explicitly, so Selenium Manager never tries to
download a driver or a browser (there is no internet here). The flags are those a closed
network needs (no background networking, updates or sync to retry), with a fresh profile
per browser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
MISSING = (
    "needs Debian's chromium and chromium-driver packages (make test installs them with "
    "apt-get; they could not be installed here)"
)


def executables() -> tuple[str, str]:
    """(chromium, chromedriver), or skip the test saying which package is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(MISSING)
    return browser, driver


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A headless Chromium session (selenium WebDriver) with its profile in ``profile``."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev extra")
    from selenium.webdriver.chrome.service import Service

    browser, driver = executables()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def full_page_screenshot(session: object, path: Path, width: int = 1400) -> None:
    """Save the whole page, not just the window, as a PNG at ``path``."""
    height = session.execute_script("return document.documentElement.scrollHeight")
    session.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    assert session.save_screenshot(str(path)), f"no screenshot written to {path}"
