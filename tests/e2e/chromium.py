"""Debian's headless Chromium for the browser tests (test_browser.py, test_dashboard.py), driven by Playwright:
its path, flags and the one timeout every wait uses, launching it, and saving a screenshot as an artefact.
Playwright's own browser download is never used. The flags are ops/browser.py's (`validate --browser`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from unistack.ops import browser

from .conftest import ARTIFACTS

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
# validate --browser's flags, but the DevTools port: Playwright talks to the browser over a pipe of its own
FLAGS = [flag for flag in browser.FLAGS if not flag.startswith("--remote-debugging-port")]
TIMEOUT_MS = 30_000  # every wait is bounded by this (a loaded 2-core machine can be slow to render)


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """The browser, closed at the end; a missing /usr/bin/chromium fails the test with the fix."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set E2E_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True, timeout=TIMEOUT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


def save_screenshot(page: Page, folder: Path, name: str, *, full_page: bool = False) -> Path:
    """The page as ``folder/name``, copied to tests/e2e/artifacts/ (not committed)."""
    path = folder / name
    page.screenshot(path=path, full_page=full_page)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path
