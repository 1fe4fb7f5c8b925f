"""The dashboard (`unistack dashboard`) on a small instance of host processes (``--runtime process``, the
default) or of containers (``--runtime docker``: the same four services in ``--image``, the stack's backend image
by default, which has sh and python3), in Debian's headless Chromium (Playwright with /usr/bin/chromium), printing
one JSON object:

- ``first_render_s``: from navigation to the graph showing every service with its state (a fresh browser
  context each run: no cache);
- ``event_to_page_s``: a service's main process SIGKILLed (a container's PID 1 as the host sees it): from the
  ``exited`` event's ``at`` in the daemon's event log to the node's ``data-state`` leaving ``running`` in the page
  (the browser's clock, the same machine's);
- ``daemon_cpu``: the unistack daemon's CPU (its process, in both runtimes; psutil cpu_times, % of one core) over
  ``--seconds`` with no page connected, then with the page open;
- ``logs``: a service printing ``--rate`` lines/s for ``--log-seconds``: lines the page received against lines
  the service wrote (its own count), the lag at the end, and the longest gap between animation frames meanwhile
  (responsiveness).

Usage: .venv/bin/python bench/dashboard.py [--runtime process|docker] [--image stack-backend:latest] [--runs 5]
       [--seconds 30] [--rate 1000] [--log-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from playwright.sync_api import Page, sync_playwright

from _common import (
    EXTRA_ENV,
    busy_warning,
    cli_env,
    daemon_pid,
    environment,
    log,
    q,
    r,
    state_dir,
    teardown,
    unistack,
    use_code_snapshot,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: the tests' dashboard process
from tests.dashboard_process import DashboardProcess

PROJECT = "dashbench"
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TALKER = """
import os, sys, time
go, done = os.environ["GO_FILE"], os.environ["DONE_FILE"]
while True:
    if not os.path.exists(go):
        time.sleep(0.05)
        continue
    rate, seconds = (float(x) for x in open(go).read().split())
    began, n = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        while n < due:
            sys.stdout.write(f"talker line {n} INFO something happened here, a request took {n % 97} ms\\n")
            n += 1
        sys.stdout.flush()
        time.sleep(0.01)
    print(f"talker done {n}", flush=True)
    open(done, "w").write(str(n + 1))
    os.remove(go)
"""


def compose(folder: Path, runtime: str, image: str) -> str:
    """db <- backend <- proxy, and a talker the proxy depends on too; its go/done files in ``folder/talk``."""
    if runtime == "process":
        py, talk = q(sys.executable), str(folder / "talk")

        def run(command: str) -> str:
            return f"x-unistack: {{process: {{command: {command}}}}}"
    else:
        py, talk = q("python3"), "/talk"

        def run(command: str) -> str:
            return f"image: {q(image)}\n    entrypoint: {command}\n    stop_grace_period: 1s"

    volume = "" if runtime == "process" else f"\n    volumes: [{q(str(folder / 'talk') + ':/talk')}]"
    return f"""
services:
  db:
    {run('["sh", "-c", "echo db up; exec sleep 100000"]')}  # quiet: the page counts only the talker's lines
    healthcheck: {{test: ["CMD-SHELL", "true"], interval: 1s}}
  backend:
    {run('["sh", "-c", "echo backend up; exec sleep 100000"]')}
    depends_on: {{db: {{condition: service_healthy}}}}
    restart: always
  talker:
    {run(f'[{py}, "-u", "-c", {q(TALKER)}]')}
    environment: {{GO_FILE: {q(talk + "/go")}, DONE_FILE: {q(talk + "/done")}}}{volume}
  proxy:
    {run('["sh", "-c", "echo proxy up; exec sleep 100000"]')}
    depends_on: {{backend: {{condition: service_started}}, talker: {{condition: service_started}}}}
"""


def main_pid(row: dict[str, Any]) -> int:
    """The service's main process as the host sees it: ``ps``'s pid, or the container's PID 1."""
    if row.get("pid"):
        return int(row["pid"])
    inspect = ["docker", "inspect", "--format", "{{.State.Pid}}", str(row["container"])]
    return int(subprocess.run(inspect, capture_output=True, text=True, check=True, timeout=30).stdout.strip())


def ps(folder: Path) -> dict[str, dict[str, Any]]:
    return {row["service"]: row for row in json.loads(unistack(folder, PROJECT, "ps", "--format", "json").stdout)}


def wait(what: Any, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {message}")


def first_render(page: Page, url: str, count: int) -> float:
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid^=\"service-\"][data-state]').length >= n",
        arg=count,
        polling="raf",
    )
    return time.perf_counter() - began


def event_delay(page: Page, folder: Path) -> tuple[float, float]:
    """(to the graph node: its state or restart count changed, to the timeline: the exited event listed)."""
    row = wait(lambda: (x := ps(folder)["backend"])["state"] == "running" and x, 60, "backend running")
    page.wait_for_selector("[data-testid='service-backend'][data-state='running']")
    page.evaluate(
        """() => {
          const node = document.querySelector('[data-testid="service-backend"]');
          const exits = () => document.querySelectorAll(
            '[data-testid=event][data-service=backend][data-kind=exited]').length;
          const before = exits();
          const now = () => performance.timeOrigin + performance.now();
          window.benchNode = null;
          window.benchTimeline = null;
          new MutationObserver((_, observer) => {
            window.benchNode ??= now();
            observer.disconnect();
          }).observe(node, {attributes: true, attributeFilter: ['data-state', 'data-restarts']});
          new MutationObserver((_, observer) => {
            if (exits() > before) {
              window.benchTimeline ??= now();
              observer.disconnect();
            }
          }).observe(document.body, {childList: true, subtree: true});
        }"""
    )
    events_file = state_dir(folder, PROJECT) / "logs" / "events.jsonl"
    offset = events_file.stat().st_size
    os.kill(main_pid(row), signal.SIGKILL)
    node = page.wait_for_function("() => window.benchNode", timeout=30_000).json_value()
    listed = page.wait_for_function("() => window.benchTimeline", timeout=30_000).json_value()

    def exited() -> float | None:
        for line in events_file.read_bytes()[offset:].decode().splitlines():
            e = json.loads(line)
            if e["kind"] == "exited" and e["service"] == "backend":
                return float(e["at"])
        return None

    at = wait(exited, 30, "the exited event")
    return float(node) / 1000 - at, float(listed) / 1000 - at


def daemon_cpu(pid: int, seconds: float) -> float:
    proc = psutil.Process(pid)
    before, began = proc.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = proc.cpu_times(), time.monotonic() - began
    return 100 * ((after.user - before.user) + (after.system - before.system)) / elapsed


def logs_throughput(page: Page, folder: Path, rate: float, seconds: float) -> dict[str, Any]:
    page.evaluate(
        """() => {
          window.benchGap = 0;
          let last = performance.now();
          const tick = (t) => {
            window.benchGap = Math.max(window.benchGap, t - last);
            last = t;
            requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        }"""
    )
    talk = folder / "talk"
    (talk / "done").unlink(missing_ok=True)
    received = "() => Number(document.querySelector('[data-testid=\"log-count\"], #log-count')?.dataset.received || 0)"
    page_before = page.evaluate(received)
    (talk / "go").write_text(f"{rate} {seconds}")
    wait(lambda: (talk / "done").exists() and (talk / "done").read_text(), seconds + 60, "the talker to finish")
    ended = time.monotonic()
    written = int((talk / "done").read_text())  # its lines and the "talker done" one
    at_end = page.evaluate(received) - page_before
    page.wait_for_function(f"() => ({received})() - {page_before} >= {written}", timeout=60_000, polling=50)
    lag = time.monotonic() - ended
    return {
        "rate_asked": rate,
        "seconds": seconds,
        "lines_written": written,
        "lines_on_page_when_it_ended": at_end,
        "caught_up_after_s": r(lag, 3),
        "lines_per_s_kept_up": r(written / (seconds + lag), 1),
        "longest_frame_gap_ms": r(page.evaluate("() => window.benchGap"), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", choices=("process", "docker"), default="process")
    parser.add_argument("--image", default="stack-backend:latest", help="for --runtime docker: has sh and python3")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--log-seconds", type=float, default=10.0)
    args = parser.parse_args()
    report: dict[str, Any] = {"bench": "dashboard", "runtime": args.runtime, **environment()}
    if args.runtime == "docker":
        report["image"] = args.image
    EXTRA_ENV["UNISTACK_RUNTIME"] = args.runtime
    failed = False
    with tempfile.TemporaryDirectory(prefix="unistack-dashbench-") as tmp:
        folder = Path(tmp)
        use_code_snapshot(folder)  # others' edits to the working tree must not make the daemon hand over mid-run
        (folder / "talk").mkdir()
        (folder / "talk").chmod(0o777)  # a container's user writes its done file there
        (folder / "compose.yaml").write_text(compose(folder, args.runtime, args.image))
        dashboard = None
        try:
            unistack(folder, PROJECT, "up", "--wait", timeout=120)
            count = len(ps(folder))
            pid = daemon_pid(folder, PROJECT)
            assert pid is not None
            log(f"daemon CPU with no dashboard for {args.seconds:g} s")
            closed = daemon_cpu(pid, args.seconds)
            dashboard = DashboardProcess(["-p", PROJECT], folder, cli_env(), folder / "dashboard.stderr")
            log(f"dashboard at {dashboard.origin}")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                renders = []
                for _ in range(args.runs):
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    renders.append(first_render(context.new_page(), dashboard.url_with_token, count))
                    context.close()
                report["first_render_s"] = {"median": r(statistics.median(renders), 3), "max": r(max(renders), 3)}
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(dashboard.url_with_token)
                page.wait_for_selector("[data-testid='daemon-status'][data-connected='true']")
                log(f"daemon CPU with the page open for {args.seconds:g} s")
                opened = daemon_cpu(pid, args.seconds)
                report["daemon_cpu_percent"] = {"dashboard_closed": r(closed, 3), "page_open": r(opened, 3)}
                delays = [event_delay(page, folder) for _ in range(max(1, min(args.runs, 5)))]
                report["event_to_page_s"] = {
                    "graph_node_median": r(statistics.median(d[0] for d in delays), 3),
                    "graph_node_max": r(max(d[0] for d in delays), 3),
                    "timeline_median": r(statistics.median(d[1] for d in delays), 3),
                    "timeline_max": r(max(d[1] for d in delays), 3),
                }
                log(f"{args.rate:g} lines/s for {args.log_seconds:g} s")
                report["logs"] = logs_throughput(page, folder, args.rate, args.log_seconds)
                context.close()
                browser.close()
        except Exception as exc:
            failed = True
            report["error"] = repr(exc)
            log(f"failed: {exc!r}")
        finally:
            if dashboard is not None:
                dashboard.stop()
            report["teardown"] = teardown(folder, PROJECT)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if note := busy_warning(report):
        report["note"] = note
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
