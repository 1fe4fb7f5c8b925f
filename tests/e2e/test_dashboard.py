"""The dashboard (`unistack dashboard`) on the real stack, in Debian's headless Chromium driven by Playwright: the
graph shows every service with its state, a service killed from the test turns exited/unhealthy and then healthy
again on the page without a reload, logs stream (a request through the proxy shows up as a backend line), the
Run-validate button shows validate's report (a skipped check as skipped), the restart button restarts a service,
a proxy restarted while the backend is stopped shows the blocking edge with its reason, and the server refuses
what it must (no token: 401; a cross-origin POST: 403, from a page of another origin in the same browser, which
carries the dashboard's cookie).

The dashboard runs as the user runs it (`python -m unistack dashboard --no-open --port 0`, its URL read from its
output: tests/dashboard_process.py), once per test. Screenshots go to the test's temp folder and
tests/e2e/artifacts/ (not committed); with E2E_DOCS_SCREENSHOTS=1 the light and dark ones at 1280x800 also replace
docs/images/dashboard-*.png (the committed ones were made so, on host processes). Needs /usr/bin/chromium
(E2E_CHROMIUM names another binary).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, expect

from tests.dashboard_process import DashboardProcess

from .chromium import TIMEOUT_MS, launch_chromium, save_screenshot
from .conftest import ARTIFACTS, COMPOSE_FILE, REPO, Stack, wait_for

pytestmark = pytest.mark.e2e

RECOVERY_MS = 90_000  # a killed backend: restart backoff, imports, migrations checked, healthcheck passes
DOCS_IMAGES = REPO / "docs" / "images"


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
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def dashboard(stack: Stack, tmp_path: Path) -> Iterator[DashboardProcess]:
    stack.wait_healthy()
    cli = ["-f", str(COMPOSE_FILE), "-p", stack.project]
    running = DashboardProcess(cli, REPO, stack.env, tmp_path / f"dashboard-{stack.project}.stderr")
    try:
        yield running
    finally:
        running.stop()
        shutil.copyfile(running.stderr_path, ARTIFACTS / running.stderr_path.name)


class Session:
    """One browser context on the dashboard: its page, and what went wrong in it (console errors, exceptions)."""

    def __init__(self, browser: Browser, dashboard: DashboardProcess, width: int = 1280, height: int = 800) -> None:
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
    browser: Browser, dashboard: DashboardProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Session]:
    opened = Session(browser, dashboard)
    try:
        yield opened
    finally:  # how the page looked at the end, passed or failed
        with contextlib.suppress(Error):
            save_screenshot(opened.page, tmp_path, f"{request.node.name}-end.png", full_page=True)
        opened.close()


def kill_main_process(stack: Stack, service: str) -> None:
    """SIGKILL of the service's main process: the pid `ps` shows, or the container's PID 1 as the host sees it."""
    if stack.runtime == "process":
        os.kill(int(stack.ps()[service]["pid"]), signal.SIGKILL)
        return
    (container,) = [c for c in stack.containers() if c.labels.get("com.docker.compose.service") == service]
    os.kill(int(container.attrs["State"]["Pid"]), signal.SIGKILL)


# --------------------------------------------------------------------------------------------------- the server


def test_no_token_is_401_and_a_cross_origin_post_is_403(
    stack: Stack, dashboard: DashboardProcess, browser: Browser, tmp_path: Path
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
    stack: Stack, dashboard: DashboardProcess, session: Session, api: httpx.Client, tmp_path: Path
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
    expect(logs.get_by_test_id("log-line").filter(has_not_text=marker).first).to_be_visible()  # every line again
    session.assert_same_page()
    if os.environ.get("E2E_DOCS_SCREENSHOTS") == "1":  # the docs' screenshots show a validate run's verdicts
        page.get_by_test_id("validate-run").click()
        result = page.get_by_test_id("validate-result")
        expect(result.get_by_test_id("validate-summary")).to_be_visible(timeout=RECOVERY_MS)
        expect(result).to_have_attribute("data-running", "false")

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


def test_the_validate_button_runs_validate_and_shows_each_verdict(
    stack: Stack, dashboard: DashboardProcess, session: Session, tmp_path: Path
) -> None:
    """Before the kill below (validate's flapping check counts its restart). Without --browser the page check is
    skipped: the panel says so in its own colour and counts it apart, and the API keeps validate's verdict."""
    page = session.page
    panel = page.get_by_test_id("validate-result")
    page.get_by_test_id("validate-run").click()
    expect(panel.get_by_test_id("validate-summary")).to_be_visible(timeout=RECOVERY_MS)
    expect(panel).to_have_attribute("data-running", "false")
    with dashboard.client(with_token=True) as client:
        report = client.get("/api/validate").json()
    assert report is not None, "the report the page shows is not the API's"
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    assert verdicts["page renders the notes"] == "skip", verdicts  # only with --browser
    # what the page shows is what validate said, whatever that is (this test is about the panel, not the stack:
    # test_validate.py judges the stack; a failed check would be listed here as failed)
    counts = {v: list(verdicts.values()).count(v) for v in ("pass", "fail", "skip")}
    summary = panel.get_by_test_id("validate-summary")
    expect(summary).to_contain_text(f"{counts['pass']} passed")
    expect(summary).to_contain_text(f"{counts['skip']} skipped")
    if counts["fail"]:
        expect(summary).to_contain_text(f"{counts['fail']} of {len(verdicts)} failed")
    expect(panel).to_have_attribute("data-ok", str(report["ok"]).lower())
    shown = panel.get_by_test_id("validate-check")
    expect(shown).to_have_count(len(report["checks"]))
    for check, item in zip(report["checks"], shown.all(), strict=True):
        expect(item).to_have_attribute("data-verdict", check["verdict"])
        expect(item).to_contain_text({"pass": "passed", "fail": "failed", "skip": "skipped"}[check["verdict"]])
    skipped = shown.filter(has_text="page renders the notes")
    passed = shown.and_(page.locator("[data-verdict=pass]")).first
    colour = "(item) => getComputedStyle(item).color"
    assert skipped.evaluate(colour) != passed.evaluate(colour), "a skipped check looks like a passed one"
    save_screenshot(page, tmp_path, f"dashboard-validate-{stack.runtime}.png")
    session.assert_same_page()
    assert not session.problems, "\n".join(session.problems)


def test_a_killed_service_turns_red_and_then_healthy_without_a_reload(
    stack: Stack, dashboard: DashboardProcess, session: Session, tmp_path: Path
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
    stack: Stack, dashboard: DashboardProcess, session: Session, tmp_path: Path
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


def test_a_service_waiting_on_a_stopped_dependency_shows_the_blocking_edge(
    stack: Stack, dashboard: DashboardProcess, session: Session, tmp_path: Path
) -> None:
    """The buttons stop the backend, then restart the proxy, which waits for a healthy backend (it never starts
    one by itself): the edge proxy -> backend is highlighted with the reason, until Start on the backend."""
    page = session.page
    edge = page.get_by_test_id("edge-proxy-backend")
    expect(edge).to_have_attribute("data-blocking", "false")
    try:
        detail = session.open_detail("backend")
        detail.get_by_test_id("btn-stop").click()
        expect(detail.get_by_test_id("action-result")).to_contain_text("stop done", timeout=RECOVERY_MS)
        expect(session.node("backend")).to_have_attribute("data-state", "stopped")
        detail = session.open_detail("proxy")
        detail.get_by_test_id("btn-restart").click()
        expect(detail.get_by_test_id("action-result")).to_contain_text("restart done", timeout=RECOVERY_MS)
        reason = "waits until backend is healthy (backend is stopped)"
        expect(edge).to_have_attribute("data-blocking", "true")
        expect(edge).to_have_class("edge blocking")
        expect(edge.locator("title")).to_contain_text(reason)
        expect(page.get_by_test_id("blocking-reason")).to_have_text(f"proxy waits for backend: {reason}")
        with dashboard.client(with_token=True) as client:
            edges = client.get("/api/services").json()["edges"]
        (api_edge,) = [e for e in edges if (e["from"], e["to"]) == ("proxy", "backend")]
        assert api_edge["blocking"] and api_edge["reason"] == reason, api_edge
        save_screenshot(page, tmp_path, f"dashboard-blocking-{stack.runtime}.png")

        detail = session.open_detail("backend")
        detail.get_by_test_id("btn-start").click()
        expect(edge).to_have_attribute("data-blocking", "false", timeout=RECOVERY_MS)
        expect(page.get_by_test_id("blocking")).to_be_hidden()
        expect(session.node("proxy")).to_have_attribute("data-state", "healthy", timeout=RECOVERY_MS)
        session.assert_same_page()
        assert not session.problems, "\n".join(session.problems)
    finally:  # passed or not, the stack as the next test expects it
        stack.cli("start", "backend", "proxy", check=False)
        stack.wait_healthy()
        stack.wait_ready()


def test_the_layout_and_the_level_pattern(stack: Stack, dashboard: DashboardProcess, session: Session) -> None:
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
