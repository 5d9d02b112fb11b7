"""Browser tests of the console: Debian's Chromium driven by Playwright, on a live server.

Chromium is launched by its path (``WARDEN_TEST_CHROMIUM``, default ``/usr/bin/chromium``):
browsers cannot be downloaded here. axe-core comes from npm (``make install`` puts it under
``.venv/npm``) and is injected into each page a test checks. Without either, these tests skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("WARDEN_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(os.environ.get("WARDEN_TEST_AXE", ROOT / ".venv/npm/node_modules/axe-core/axe.min.js"))


# Per module, not per session: while Playwright's sync API is open it leaves its event loop
# marked as running in the worker, and a later module's asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.is_file() and shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (its own cookies) and page, closed after the test."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
