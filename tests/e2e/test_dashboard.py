"""The dashboard (`unistack dashboard`) on the real stack, in Debian's headless Chromium driven by Playwright: the
graph shows every service with its state, a service killed from the test turns exited/unhealthy and then healthy
again on the page without a reload, logs stream (a request through the proxy shows up as a backend line), the
restart button restarts a service, and the server refuses what it must (no token: 401; a cross-origin POST: 403,
from a page of another origin in the same browser, which carries the dashboard's cookie).

The dashboard runs as the user runs it (`python -m unistack dashboard --no-open --port 0`, its URL read from its
output), once per runtime. Screenshots go to the test's temp folder and tests/e2e/artifacts/ (not committed);
with E2E_DOCS_SCREENSHOTS=1 the light and dark ones at 1280x800 also replace docs/images/dashboard-*.png (the
committed ones were made so, on host processes). Needs /usr/bin/chromium (E2E_CHROMIUM names another binary).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, expect, sync_playwright

from .conftest import ARTIFACTS, COMPOSE_FILE, REPO, Stack, wait_for
from .test_browser import CHROMIUM, FLAGS, TIMEOUT_MS

pytestmark = pytest.mark.e2e

URL_LINE = re.compile(r"dashboard: (http://127\.0\.0\.1:(\d+))/\?token=([A-Za-z0-9_-]+)")
START_TIMEOUT = 60.0  # the dashboard prints its URL once it listens
RECOVERY_MS = 90_000  # a killed backend: restart backoff, imports, migrations checked, healthcheck passes
DOCS_IMAGES = REPO / "docs" / "images"


class Dashboard:
    """`unistack dashboard --no-open --port 0` for the stack's instance, as a child process."""

    def __init__(self, stack: Stack, folder: Path) -> None:
        self.output: list[str] = []
        self.stderr_path = folder / f"dashboard-{stack.project}.stderr"
        argv = [sys.executable, "-m", "unistack", "-f", str(COMPOSE_FILE), "-p", stack.project]
        argv += ["dashboard", "--no-open", "--port", "0"]
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**stack.env, "PYTHONUNBUFFERED": "1", "DISPLAY": "", "BROWSER": ""},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        try:
            self.origin, self.token = wait_for(self.url, START_TIMEOUT, "the dashboard to print its URL")
        except AssertionError:
            self.stop()
            raise AssertionError(f"{self.describe()}") from None
        self.url_with_token = f"{self.origin}/?token={self.token}"

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # ends when the process does
            self.output.append(line)

    def url(self) -> tuple[str, str] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the dashboard exited with {self.process.returncode}\n{self.describe()}")
        for line in list(self.output):
            if found := URL_LINE.search(line):
                return found.group(1), found.group(3)
        return None

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace")[-3000:] if self.stderr_path.exists() else ""
        return f"--- dashboard stdout\n{''.join(self.output)[-3000:]}--- dashboard stderr\n{stderr}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.origin, timeout=30.0, trust_env=False, **kwargs)

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; SIGKILL after 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    """Every `expect` here waits up to TIMEOUT_MS (Playwright's default, 5 s, is short on a loaded machine)."""
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        yield
    finally:
        expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set E2E_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True, timeout=TIMEOUT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def dashboard(stack: Stack, tmp_path: Path) -> Iterator[Dashboard]:
    stack.wait_healthy()
    running = Dashboard(stack, tmp_path)
    try:
        yield running
    finally:
        running.stop()
        shutil.copyfile(running.stderr_path, ARTIFACTS / running.stderr_path.name)


class Session:
    """One browser context on the dashboard: its page, and what went wrong in it (console errors, exceptions)."""

    def __init__(self, browser: Browser, dashboard: Dashboard, width: int = 1280, height: int = 800) -> None:
        self.problems: list[str] = []
        self.context: BrowserContext = browser.new_context(viewport={"width": width, "height": height})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.page.on("console", self.on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught {error}"))
        self.page.goto(dashboard.url_with_token, wait_until="load")
        expect(self.page.get_by_test_id("daemon-status")).to_have_attribute("data-connected", "true")
        self.page.evaluate("() => { window.e2eSamePage = true; }")  # gone if the page reloads

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def node(self, service: str) -> Any:
        return self.page.get_by_test_id(f"service-{service}")

    def open_detail(self, service: str) -> Any:
        self.node(service).click()
        detail = self.page.get_by_test_id("detail")
        expect(detail).to_have_attribute("data-service", service)
        return detail

    def assert_same_page(self) -> None:
        assert self.page.evaluate("() => window.e2eSamePage === true"), "the page reloaded"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(
    browser: Browser, dashboard: Dashboard, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Session]:
    opened = Session(browser, dashboard)
    try:
        yield opened
    finally:  # how the page looked at the end, passed or failed
        with contextlib.suppress(Error):
            save_screenshot(opened.page, tmp_path, f"{request.node.name}-end.png", full_page=True)
        opened.close()


def save_screenshot(page: Page, folder: Path, name: str, *, full_page: bool = False) -> Path:
    path = folder / name
    page.screenshot(path=path, full_page=full_page)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def kill_main_process(stack: Stack, service: str) -> None:
    """SIGKILL of the service's main process: the pid `ps` shows, or the container's PID 1 as the host sees it."""
    if stack.runtime == "process":
        os.kill(int(stack.ps()[service]["pid"]), signal.SIGKILL)
        return
    (container,) = [c for c in stack.containers() if c.labels.get("com.docker.compose.service") == service]
    os.kill(int(container.attrs["State"]["Pid"]), signal.SIGKILL)


# --------------------------------------------------------------------------------------------------- the server


def test_no_token_is_401_and_a_cross_origin_post_is_403(
    stack: Stack, dashboard: Dashboard, browser: Browser, tmp_path: Path
) -> None:
    before = stack.ps()["proxy"]["started_at"]
    with dashboard.client() as client:
        for path in ("/", "/api/services", "/api/stream", "/static/app.js"):
            assert client.get(path).status_code == 401, path
        assert client.get("/api/services", params={"token": dashboard.token + "x"}).status_code == 401
        assert client.post("/api/services/proxy/restart").status_code == 401
        good = client.get("/api/services", params={"token": dashboard.token})
        assert good.status_code == 200, good.text
        assert {row["service"] for row in good.json()["services"]} == set(stack.ps())
        foreign = client.post(
            "/api/services/proxy/restart", params={"token": dashboard.token}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403, foreign.text
        get_action = client.get("/api/services/proxy/restart", params={"token": dashboard.token})
        assert get_action.status_code in (404, 405), "a GET must never run an action"

    # A page of another origin (the stack's own, on another port: the same site, so the SameSite=Strict cookie
    # goes along) posts to the dashboard: the browser sends its Origin, and the server refuses.
    context = browser.new_context(bypass_csp=True)  # the stack's CSP would stop the fetch before it is sent
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(dashboard.url_with_token, wait_until="load")  # sets the cookie
        assert any(c["name"] == "unistack_dashboard" for c in context.cookies(dashboard.origin))
        page.goto(stack.base_url + "/", wait_until="load")
        target = f"{dashboard.origin}/api/services/proxy/restart"
        with page.expect_response(lambda r: r.url == target) as answer:
            page.evaluate(
                "(url) => fetch(url, {method: 'POST', mode: 'no-cors', credentials: 'include'}).catch(() => null)",
                target,
            )
        assert answer.value.status == 403, f"a cross-origin POST got {answer.value.status}"
        assert answer.value.request.all_headers().get("origin") == stack.base_url
    finally:
        context.close()
    assert stack.ps()["proxy"]["started_at"] == before, "a refused request restarted the proxy"


# --------------------------------------------------------------------------------------------------- the page


def test_the_page_shows_every_service_and_streams_logs(
    stack: Stack, dashboard: Dashboard, session: Session, api: httpx.Client, tmp_path: Path
) -> None:
    page = session.page
    rows = stack.ps()
    expect(page.get_by_test_id("project")).to_have_text(stack.project)
    expect(page.locator("[data-testid^='service-'][data-state]")).to_have_count(len(rows))
    for name, row in rows.items():
        node = session.node(name)
        expect(node).to_have_attribute("data-state", row["state"])
        expect(node).to_contain_text(name)
    for dependent, dependency in (("backend", "db"), ("proxy", "backend")):
        expect(page.get_by_test_id(f"edge-{dependent}-{dependency}")).to_have_attribute("data-blocking", "false")

    detail = session.open_detail("backend")
    expect(detail.get_by_test_id("detail-state")).to_have_text("healthy")
    expect(detail.get_by_test_id("detail-check")).to_contain_text("passed")
    expect(detail.get_by_test_id("detail-memory")).to_contain_text("B")  # "123.4 MiB": psutil / Engine stats
    ident = str(rows["backend"]["pid"] or rows["backend"]["container"][:12])
    expect(detail.get_by_test_id("detail-ident")).to_have_text(ident)
    expect(page.get_by_test_id("timeline").get_by_test_id("event").first).to_be_visible()

    # a request through the proxy: its access-log line streams into the logs panel
    marker = f"dashboard-e2e-{uuid.uuid4().hex[:8]}"
    assert api.get(f"/api/{marker}").status_code == 404
    logs = page.get_by_test_id("logs")
    expect(logs.get_by_test_id("log-line").filter(has_text=marker).first).to_be_visible()
    page.get_by_test_id("log-search").fill(marker)
    expect(logs.get_by_test_id("log-line").filter(has_not_text=marker)).to_have_count(0)
    expect(logs.get_by_test_id("log-line").filter(has_text=marker).first).to_have_attribute("data-service", "backend")
    page.get_by_test_id("log-search").fill("")
    session.assert_same_page()

    # the screenshots: light, then dark through the toggle (kept in localStorage), at 1280x800, and a narrow one
    effective = (
        "() => document.documentElement.dataset.theme || (matchMedia('(prefers-color-scheme: dark)')"
        ".matches ? 'dark' : 'light')"
    )
    for theme in ("light", "dark"):
        if page.evaluate(effective) != theme:
            page.get_by_test_id("theme-toggle").click()
        expect(page.get_by_test_id("theme-toggle")).to_have_attribute("aria-pressed", str(theme == "dark").lower())
        assert page.evaluate(effective) == theme
        shot = save_screenshot(page, tmp_path, f"dashboard-{theme}-{stack.runtime}.png")
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"
        if os.environ.get("E2E_DOCS_SCREENSHOTS") == "1" and stack.runtime == "process":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMAGES / f"dashboard-{theme}.png")
    page.set_viewport_size({"width": 400, "height": 800})
    expect(session.node("proxy")).to_be_visible()
    save_screenshot(page, tmp_path, f"dashboard-narrow-{stack.runtime}.png", full_page=True)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width} px wide in a 400 px window"
    page.reload(wait_until="load")  # by the cookie now (the page took the token out of its address)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # the toggle's choice is kept
    expect(session.node("proxy")).to_have_attribute("data-state", "healthy")
    assert not session.problems, "\n".join(session.problems)


def test_a_killed_service_turns_red_and_then_healthy_without_a_reload(
    stack: Stack, dashboard: Dashboard, session: Session, tmp_path: Path
) -> None:
    page = session.page
    node = session.node("backend")
    expect(node).to_have_attribute("data-state", "healthy")
    restarts = int(node.get_attribute("data-restarts") or "0")
    # every state the node shows from now on, in order (a transient one may last less than a poll of the test)
    page.evaluate(
        """() => {
          const node = document.querySelector('[data-testid="service-backend"]');
          window.e2eStates = [];
          new MutationObserver(() => window.e2eStates.push(node.dataset.state))
            .observe(node, {attributes: true, attributeFilter: ['data-state']});
        }"""
    )
    kill_main_process(stack, "backend")
    page.wait_for_function("() => window.e2eStates.some((s) => s !== 'healthy')", timeout=TIMEOUT_MS, polling=100)
    save_screenshot(page, tmp_path, f"dashboard-killed-{stack.runtime}.png")
    expect(node).to_have_attribute("data-state", "healthy", timeout=RECOVERY_MS)
    expect(node).to_have_attribute("data-restarts", str(restarts + 1))
    seen = page.evaluate("() => window.e2eStates")
    assert set(seen) & {"exited", "restarting", "starting", "unhealthy"}, f"states shown: {seen}"
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator("[data-testid=event][data-service=backend][data-kind=exited]").first).to_be_visible()
    detail = session.open_detail("backend")
    expect(detail.get_by_test_id("detail-restarts")).to_have_text(str(restarts + 1))
    expect(detail.get_by_test_id("detail-restart-history").locator("li").first).to_be_visible()
    session.assert_same_page()
    stack.wait_healthy()
    stack.wait_ready()
    assert not session.problems, "\n".join(session.problems)


def test_the_restart_button_restarts_the_service(
    stack: Stack, dashboard: Dashboard, session: Session, tmp_path: Path
) -> None:
    before = stack.ps()["proxy"]
    detail = session.open_detail("proxy")
    started = detail.get_by_test_id("detail-started-at")
    expect(started).to_have_attribute("data-value", before["started_at"])
    detail.get_by_test_id("btn-restart").click()
    expect(detail.get_by_test_id("action-result")).to_contain_text("restart done", timeout=RECOVERY_MS)
    expect(started).not_to_have_attribute("data-value", before["started_at"])
    expect(session.node("proxy")).to_have_attribute("data-state", "healthy", timeout=RECOVERY_MS)
    after = wait_for(
        lambda: (row := stack.ps()["proxy"])["started_at"] != before["started_at"] and row, 30, "ps to show the restart"
    )
    assert after["started_at"] != before["started_at"]
    save_screenshot(session.page, tmp_path, f"dashboard-restarted-{stack.runtime}.png")
    session.assert_same_page()
    stack.wait_healthy()
    stack.wait_ready()
    assert not session.problems, "\n".join(session.problems)


def test_the_layout_and_the_level_pattern(stack: Stack, dashboard: Dashboard, session: Session) -> None:
    """The pieces of the page that are plain functions: the layered layout puts each dependency before its
    dependents, the level filter's pattern, and the log view's DOM bound."""
    result = session.page.evaluate(
        """async () => {
          const { layout } = await import('/static/graph.js');
          const { levelOf, MAX_DOM } = await import('/static/logs.js');
          const edges = [{from: 'b', to: 'a'}, {from: 'c', to: 'b'}, {from: 'c', to: 'a'}, {from: 'd', to: 'x'}];
          return {
            layers: layout(['c', 'b', 'a', 'd'], edges),
            levels: ['ERROR boom', 'a warning here', 'DEBUG x', 'GET / 200'].map(levelOf),
            max: MAX_DOM,
          };
        }"""
    )
    assert result["layers"] == [["a", "d"], ["b"], ["c"]]
    assert result["levels"] == ["error", "warn", "debug", "info"]
    assert result["max"] == 5000
