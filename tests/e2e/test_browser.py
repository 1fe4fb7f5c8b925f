"""One browser test, in Debian's headless Chromium driven by Playwright: a note typed into the form in one tab
appears in a second tab (another browser context) through the WebSocket, without a reload.

Needs /usr/bin/chromium (`apt-get install chromium`; E2E_CHROMIUM names another binary; tests/e2e/chromium.py
launches it). Screenshots go to the test's temp folder and to tests/e2e/artifacts/ (not committed).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect

from .chromium import TIMEOUT_MS, launch_chromium, save_screenshot
from .conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def open_app(browser: Browser, stack: Stack, problems: list[str], name: str) -> Page:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):  # a CSP violation is reported here as an error
            problems.append(f"{name}: console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{name}: uncaught {error}"))
    page.goto(stack.base_url + "/", wait_until="load")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)
    return page


def test_a_note_made_in_one_tab_appears_live_in_another(
    stack: Stack, api: httpx.Client, browser: Browser, tmp_path: Path
) -> None:
    problems: list[str] = []
    writer = open_app(browser, stack, problems, "writer")
    reader = open_app(browser, stack, problems, "reader")
    try:
        reader.evaluate("() => { window.e2eSamePage = true; }")  # gone if the page reloads
        title = f"Browser note {uuid.uuid4().hex[:6]}"

        form = writer.get_by_test_id("note-form")
        form.get_by_test_id("note-title-input").fill(title)
        form.get_by_test_id("note-body-input").fill("Typed into the form in headless Chromium.")
        form.get_by_test_id("note-submit").click()

        mine = writer.get_by_test_id("note-list").get_by_test_id("note-item").filter(has_text=title)
        expect(mine).to_have_count(1)
        expect(form.get_by_test_id("note-title-input")).to_have_value("")  # the form is ready for the next one
        theirs = reader.get_by_test_id("note-list").get_by_test_id("note-item").filter(has_text=title)
        expect(theirs).to_have_count(1)
        expect(theirs).to_contain_text("Typed into the form in headless Chromium.")
        assert reader.evaluate("() => window.e2eSamePage === true"), "the second tab reloaded"
        expect(reader.get_by_test_id("live-status")).to_have_attribute("data-state", "live")

        note_id = theirs.get_attribute("data-note-id")
        assert note_id is not None and note_id == mine.get_attribute("data-note-id")
        saved = api.get(f"/api/notes/{note_id}").json()
        assert (saved["title"], saved["body"]) == (title, "Typed into the form in headless Chromium.")

        for page, name in ((writer, "browser-writer.png"), (reader, "browser-reader.png")):
            shot = save_screenshot(page, tmp_path, name, full_page=True)
            assert shot.stat().st_size > 5_000, f"{shot} looks empty"
        assert not problems, "\n".join(problems)
        api.delete(f"/api/notes/{note_id}")
    except (AssertionError, Error):
        for page, name in ((writer, "browser-writer-failed.png"), (reader, "browser-reader-failed.png")):
            with contextlib.suppress(Error):
                save_screenshot(page, tmp_path, name, full_page=True)
        raise
    finally:
        for page in (writer, reader):
            page.context.close()
