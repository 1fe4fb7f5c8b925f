"""Edit-to-visible latency of the stack in local dev mode (FRONTEND_MODE=dev, COMPOSE_PROFILES=dev, BACKEND_RELOAD=1).

- backend: from saving a Python file under stack/backend/app to the changed answer coming back through the proxy.
  The edit is the docstring of ``health()`` in app/api/routes/health.py, which FastAPI serves as the description
  of ``GET /api/health`` in ``/api/openapi.json``: a real ``.py`` save, so uvicorn's reloader (watchfiles) restarts
  the worker, and a real answer, so the new worker must have imported the app and be serving. Polled through Caddy
  every ``--poll-ms``. A thread also watches the worker processes, to split the time into: change noticed and old
  worker stopped, new worker started, new worker serving.
- frontend: from saving stack/frontend/src/style.css to the page applying it, in headless Chromium (Debian's, via
  Playwright) showing the app through the proxy. The edit changes the light theme's ``--text`` colour by one step
  of blue (invisible to a person, measurable in ``getComputedStyle``). In the page a listener on Vite's own HMR
  events and a ``requestAnimationFrame`` loop stamp ``Date.now()``; the save is stamped with ``time.time()``: the
  same wall clock on one machine (the offset between the two is measured and reported).

Each measured save goes from one variant to the next and the last one writes the original bytes back, so N runs
are N saves (every dev instance running from this source folder reloads on each one: keep N small). Before every
write the file must still hold what this script last wrote; if someone else changed it meanwhile the script stops
and leaves their change alone. Whatever happens, a ``finally`` puts the original bytes back.

Brings up ``-p bench`` (``--project``) on ``--port`` if it is not up, and takes it down at the end unless ``--keep``
or it was already up. Prints one JSON object on stdout; progress goes to stderr.

  .venv/bin/pip install playwright          # once; uses /usr/bin/chromium (never run `playwright install`)
  .venv/bin/python bench/reload.py [--runs 5] [--port 18090] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from _common import busy_warning, environment, log, process_created_epoch

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "stack"
COMPOSE = STACK / "compose.yaml"
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODES = {
    "dev": {"FRONTEND_MODE": "dev", "COMPOSE_PROFILES": "dev", "BACKEND_RELOAD": "1"},
    "static": {"FRONTEND_MODE": "static", "COMPOSE_PROFILES": "static", "BACKEND_RELOAD": "0"},
}

BACKEND_FILE = STACK / "backend" / "app" / "api" / "routes" / "health.py"
BACKEND_ANCHOR = "asks nothing of the database."
OPENAPI_PATH = "/api/openapi.json"
CSS_FILE = STACK / "frontend" / "src" / "style.css"
CSS_VAR = re.compile(rb"(--text:\s*#)([0-9a-fA-F]{6})(\s*;)")  # the first one is the light theme's (:root)
CSS_ELEMENT = "h1"  # colour: inherited from body { color: var(--text) }

BACKEND_TARGET_S = 1.5
FRONTEND_TARGET_MS = 300.0


class Interrupted(Exception):
    """SIGTERM/SIGHUP: unwind through every ``finally`` (files restored, instance down)."""


def raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


# --- the instance --------------------------------------------------------------------------------------------------


class StackInstance:
    """One instance of stack/compose.yaml (``-p project``), run through the CLI with the mode's variables."""

    def __init__(self, project: str, port: int, mode: str) -> None:
        self.project, self.port, self.mode = project, port, mode
        self.state_dir = STACK / ".unistack" / project
        self.run_dir = self.state_dir / "run"
        env = {**os.environ, "NO_COLOR": "1", "HTTP_PORT": str(port), **MODES[mode]}
        for name in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
            env.pop(name, None)
        self.env = env
        self.brought_up = False
        self.was_up = False
        self.fresh = False

    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, "-m", "unistack", "-f", str(COMPOSE), "-p", self.project, *args]
        res = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"unistack {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def services(self) -> dict[str, dict[str, Any]]:
        if not (self.state_dir / "state.json").exists():
            return {}
        try:
            res = self.cli("ps", "--format", "json", timeout=30, check=False)
            return {s["service"]: s for s in json.loads(res.stdout)} if res.returncode == 0 else {}
        except (ValueError, KeyError, subprocess.TimeoutExpired, OSError):
            return {}

    def is_up(self) -> bool:
        svc = self.services()
        return all(svc.get(name, {}).get("state") in ("running", "healthy") for name in ("backend", "proxy"))

    def pid(self, service: str) -> int | None:
        pid = self.services().get(service, {}).get("pid")
        return int(pid) if pid else None

    def up(self, wait_timeout: int = 900) -> dict[str, Any]:
        """``up --wait`` (also what brings a half-up instance back, e.g. one whose backend waits for a migration)."""
        live = {name for name, s in self.services().items() if s.get("state") not in (None, "exited", "stopped")}
        self.was_up = {"backend", "proxy"} <= live
        self.fresh = not (self.state_dir / "volumes" / "db").exists()
        if "proxy" not in live and port_in_use(self.port):
            raise RuntimeError(f"127.0.0.1:{self.port} is taken by something else: pick another --port")
        log(f"up -p {self.project} ({self.mode} mode, port {self.port}){' (already up)' if self.was_up else ''}")
        began = time.monotonic()
        self.cli("up", "--wait", "--wait-timeout", str(wait_timeout), timeout=wait_timeout + 60)
        self.brought_up = not self.was_up
        return {
            "project": self.project,
            "port": self.port,
            "mode": self.mode,
            "variables": MODES[self.mode],
            "was_up": self.was_up,
            "up_s": round(time.monotonic() - began, 2),
        }

    def down(self) -> dict[str, Any]:
        """``down``; with ``-v`` when this run created the instance's database (leaves the machine as found)."""
        args = ("down", "-v", "-t", "10") if self.fresh else ("down", "-t", "10")
        log(" ".join(args) + f" -p {self.project}")
        res = self.cli(*args, timeout=180, check=False)
        strays = self.strays(grace=5.0)
        for proc in strays:  # e.g. services left behind by a daemon that died: SIGTERM, then SIGKILL
            log(f"stopping stray process {proc.pid} {' '.join(proc.info.get('cmdline') or [])[:200]}")
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(strays, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        return {"command": " ".join(args), "ok": res.returncode == 0, "stray_processes_stopped": len(strays)}

    def strays(self, grace: float) -> list[psutil.Process]:
        """Live processes of this instance only: its state folder in the command line or as UNISTACK_STATE_DIR."""
        mark = str(self.state_dir)
        deadline = time.monotonic() + grace
        while True:
            found = []
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if proc.pid == os.getpid():
                    continue
                try:
                    args = " ".join(proc.info["cmdline"] or []).split()  # a retitled daemon: one argument
                    mine = any(a == mark or a.startswith(mark + os.sep) or f"={mark}{os.sep}" in a for a in args)
                    mine = mine or proc.environ().get("UNISTACK_STATE_DIR") == mark
                except psutil.Error:
                    continue
                if mine:
                    found.append(proc)
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- editing a file safely -----------------------------------------------------------------------------------------


class ConcurrentEdit(Exception):
    pass


class FileEdit:
    """Writes variants of one file in place; gives its exact original bytes back, unless someone else changed it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_bytes()
        self.last = self.original
        self.writes = 0

    def write(self, data: bytes) -> float:
        """Writes ``data`` and returns the wall-clock time the write completed (the save)."""
        if self.path.read_bytes() != self.last:
            raise ConcurrentEdit(f"{self.path} was changed by someone else during the run; stopping")
        with open(self.path, "r+b") as fh:  # in place, like most editors' plain save: the inode stays
            fh.write(data)
            fh.truncate()
        saved = time.time()
        self.last = data
        self.writes += 1
        return saved

    def restore(self) -> str:
        current = self.path.read_bytes()
        if current == self.original:
            return "original bytes in place"
        if current != self.last:
            return "NOT restored: changed by someone else since the last write here (their change left alone)"
        with open(self.path, "r+b") as fh:
            fh.write(self.original)
            fh.truncate()
        return "restored to the original bytes"


# --- small helpers -------------------------------------------------------------------------------------------------


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


class Poller:
    """GET over one keep-alive connection to the proxy; reconnects after an error."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.errors = 0
        self.statuses: dict[int, int] = {}

    def get(self, path: str) -> bytes | None:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            body = resp.read()
            self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
            return body if resp.status == 200 else None
        except (OSError, http.client.HTTPException):
            self.errors += 1
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# --- backend -------------------------------------------------------------------------------------------------------


def health_description(poller: Poller) -> str | None:
    body = poller.get(OPENAPI_PATH)
    if body is None:
        return None
    try:
        return str(json.loads(body)["paths"]["/api/health"]["get"].get("description", ""))
    except (ValueError, KeyError, TypeError):
        return None


def worker_of(reloader: psutil.Process) -> psutil.Process | None:
    """uvicorn --reload runs the app in a multiprocessing child (spawn_main); the resource tracker is another."""
    with contextlib.suppress(psutil.Error):
        for child in reloader.children():
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(child.cmdline())
                if "spawn_main" in cmd and child.status() != psutil.STATUS_ZOMBIE:
                    return child
    return None


class WorkerWatch(threading.Thread):
    """Stamps when the old worker is gone and when the new one appears (its creation time from /proc)."""

    def __init__(self, reloader: psutil.Process, old: psutil.Process | None, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.reloader, self.old, self.limit_s = reloader, old, limit_s
        self.stop = threading.Event()
        self.old_gone_at: float | None = None
        self.new_pid: int | None = None
        self.new_created_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.old_gone_at is None and self.old is not None:
                try:
                    gone = self.old.status() == psutil.STATUS_ZOMBIE
                except psutil.NoSuchProcess:
                    gone = True
                except psutil.Error:
                    gone = False
                if gone:
                    self.old_gone_at = time.time()
            if self.new_pid is None:
                new = worker_of(self.reloader)
                if new is not None and (self.old is None or new.pid != self.old.pid):
                    self.new_pid = new.pid
                    self.new_created_at = process_created_epoch(new.pid)
            if self.new_pid is not None and (self.old is None or self.old_gone_at is not None):
                return
            time.sleep(0.005)


def other_dev_backends(own_pid: int | None) -> list[str]:
    """Other uvicorn --reload processes watching the same source folder: each save restarts them too (CPU)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            args = proc.info["cmdline"] or []
            if proc.pid == own_pid or not any(a.endswith("uvicorn") for a in args[:3]) or "--reload" not in args:
                continue
            if proc.cwd() != str(STACK / "backend"):
                continue
        except psutil.Error:
            continue
        uds = args[args.index("--uds") + 1] if "--uds" in args else "?"
        found.append(uds)
    return found


def import_cost(runs: int = 3) -> dict[str, Any]:
    """What a fresh worker pays before serving: interpreter start, then importing uvicorn and the app."""
    py = str(STACK / "backend" / ".venv" / "bin" / "python")
    code = "import time; t = time.perf_counter(); import uvicorn, app.main; print(time.perf_counter() - t)"
    imports, walls, bare = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        res = subprocess.run([py, "-c", code], cwd=STACK / "backend", capture_output=True, text=True, timeout=60)
        walls.append(time.perf_counter() - began)
        with contextlib.suppress(ValueError):
            imports.append(float(res.stdout.strip()))
        began = time.perf_counter()
        subprocess.run([py, "-c", "pass"], capture_output=True, timeout=30)
        bare.append(time.perf_counter() - began)
    return {
        "interpreter_start_s": round(statistics.median(bare), 3),
        "import_uvicorn_and_app_s": round(statistics.median(imports), 3) if imports else None,
        "fresh_process_total_s": round(statistics.median(walls), 3),
        "runs": runs,
    }


def bench_backend(inst: StackInstance, args: argparse.Namespace) -> dict[str, Any]:
    reloader_pid = inst.pid("backend")
    if reloader_pid is None:
        raise RuntimeError("the backend has no pid in `ps`")
    reloader = psutil.Process(reloader_pid)
    if "--reload" not in reloader.cmdline():
        raise RuntimeError(f"the backend (pid {reloader_pid}) runs without --reload: is BACKEND_RELOAD=1 in effect?")
    others = other_dev_backends(reloader_pid)
    log(f"backend: other uvicorn --reload processes on this source folder: {len(others)}")
    cost = import_cost()
    log(f"backend: fresh interpreter + import of uvicorn and app.main: {cost}")

    # A request sent while the worker restarts waits in the socket's backlog (the reloader keeps the listening
    # socket) and is answered by the new worker: let it wait as a browser would, rather than time out and resend.
    poller = Poller(inst.port, timeout=args.run_timeout)
    served = health_description(poller)
    source = BACKEND_FILE.read_bytes()
    if served is None or BACKEND_ANCHOR not in served or source.count(BACKEND_ANCHOR.encode()) != 1:
        raise RuntimeError(f"cannot find {BACKEND_ANCHOR!r} once in {BACKEND_FILE} and in GET {OPENAPI_PATH}")
    token = secrets.token_hex(3)
    plan: list[tuple[bytes, str]] = []
    for k in range(1, args.runs):
        mark = f"{BACKEND_ANCHOR} [bench-reload {token} {k}]"
        plan.append(
            (source.replace(BACKEND_ANCHOR.encode(), mark.encode(), 1), served.replace(BACKEND_ANCHOR, mark, 1))
        )
    plan.append((source, served))  # the last measured save writes the original bytes back

    runs: list[dict[str, Any]] = []
    edit = FileEdit(BACKEND_FILE)
    try:
        expected_before = served
        for i, (data, expected) in enumerate(plan, 1):
            time.sleep(args.settle)
            if not wait_until(lambda exp=expected_before: health_description(poller) == exp, timeout=20, step=0.2):
                raise RuntimeError("the backend did not settle on the previous content before the next save")
            old = worker_of(reloader)
            watch = WorkerWatch(reloader, old, limit_s=args.run_timeout)
            watch.start()
            errors0, statuses0 = poller.errors, dict(poller.statuses)
            saved = edit.write(data)
            seen = sent = None
            polls = 0
            while time.time() - saved < args.run_timeout:
                polls += 1
                sent = time.time()
                if health_description(poller) == expected:
                    seen = time.time()
                    break
                time.sleep(args.poll_ms / 1000)
            watch.stop.set()
            watch.join(timeout=2)
            non_ok = {
                str(code): n - statuses0.get(code, 0)
                for code, n in poller.statuses.items()
                if code != 200 and n > statuses0.get(code, 0)
            }
            run = {
                "run": i,
                "writes_original": data == source,
                "save_to_response_s": round(seen - saved, 3) if seen else None,
                "last_request_sent_after_s": round(sent - saved, 3) if seen and sent else None,
                "save_to_old_worker_gone_s": round(watch.old_gone_at - saved, 3) if watch.old_gone_at else None,
                "save_to_new_worker_created_s": round(watch.new_created_at - saved, 3)
                if watch.new_created_at
                else None,
                "new_worker_created_to_response_s": round(seen - watch.new_created_at, 3)
                if seen and watch.new_created_at
                else None,
                "polls": polls,
                "connection_errors": poller.errors - errors0,
                "non_200": non_ok,
            }
            log(f"backend run {i}: {run}")
            runs.append(run)
            if seen is None:
                raise RuntimeError(f"run {i}: the new content did not appear within {args.run_timeout} s")
            expected_before = expected
    finally:
        restored = edit.restore()
        poller.close()
        log(f"backend: {BACKEND_FILE.relative_to(REPO)}: {restored}")

    times = [r["save_to_response_s"] for r in runs if r["save_to_response_s"] is not None]
    med = statistics.median(times) if times else None
    return {
        "file": str(BACKEND_FILE.relative_to(REPO)),
        "edit": f"docstring of health(): {BACKEND_ANCHOR!r} + a marker, read in GET {OPENAPI_PATH} via the proxy",
        "poll_interval_ms": args.poll_ms,
        "save_to_response_s": summary(times),
        "phases_median_s": {
            "save_to_old_worker_gone": _median(runs, "save_to_old_worker_gone_s"),
            "save_to_new_worker_created": _median(runs, "save_to_new_worker_created_s"),
            "new_worker_created_to_response": _median(runs, "new_worker_created_to_response_s"),
        },
        "fresh_worker_cost": cost,
        "other_dev_backends_reloading_on_each_save": len(others),
        "target_s": BACKEND_TARGET_S,
        "target_met": med is not None and med <= BACKEND_TARGET_S and max(times) <= BACKEND_TARGET_S,
        "runs": runs,
        "file_restore": restored,
        "saves": edit.writes + (1 if restored.startswith("restored") else 0),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


# --- frontend ------------------------------------------------------------------------------------------------------

PROBE_JS = """
async (sel) => {
  if (window.__benchHmr) return true;
  const color = () => getComputedStyle(document.querySelector(sel)).color;
  const state = { events: [], last: color() };
  window.__benchHmr = state;
  const { createHotContext } = await import('/@vite/client');
  const hot = createHotContext('/__bench_reload_probe__');
  hot.on('vite:beforeUpdate', (p) => state.events.push({ kind: 'message', t: Date.now(),
    paths: p.updates.map((u) => u.path) }));
  hot.on('vite:afterUpdate', () => state.events.push({ kind: 'applied', t: Date.now(), color: color() }));
  hot.on('vite:beforeFullReload', () => state.events.push({ kind: 'full-reload', t: Date.now() }));
  const tick = () => {
    const c = color();
    if (c !== state.last) { state.last = c; state.events.push({ kind: 'frame', t: Date.now(), color: c }); }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return true;
}
"""


def rgb(hex6: str) -> str:
    r, g, b = (int(hex6[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def clock_offset_ms(page: Any, samples: int = 5) -> dict[str, float]:
    """Page Date.now() minus Python time.time() (ms), from the sample with the shortest round trip."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t1 = time.time()
        js = float(page.evaluate("Date.now()"))
        t2 = time.time()
        rtt = (t2 - t1) * 1000
        off = js - (t1 + t2) / 2 * 1000
        if best is None or rtt < best[0]:
            best = (rtt, off)
    assert best is not None
    return {"offset_ms": round(best[1], 2), "uncertainty_ms": round(best[0] / 2 + 1, 2)}


def open_browser(pw: Any, port: int) -> tuple[Any, Any]:
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(color_scheme="light")
    page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
    page.wait_for_function("document.querySelector('[data-testid=note-list]') !== null", timeout=30_000)
    return browser, page


def _since(first: dict[str, dict[str, Any]], origin_ms: float, kind: str) -> float | None:
    """ms from the save to the first page event of ``kind`` (page clock, ``origin_ms`` already corrected)."""
    e = first.get(kind)
    return round(e["t"] - origin_ms, 1) if e else None


def bench_frontend(page: Any, args: argparse.Namespace) -> dict[str, Any]:
    source = CSS_FILE.read_bytes()
    match = CSS_VAR.search(source)
    if match is None:
        raise RuntimeError(f"no `--text: #rrggbb;` in {CSS_FILE}")
    hex0 = match.group(2).decode()
    page.evaluate(PROBE_JS, CSS_ELEMENT)
    initial = page.evaluate(f"getComputedStyle(document.querySelector('{CSS_ELEMENT}')).color")
    if initial != rgb(hex0):
        raise RuntimeError(f"the page's {CSS_ELEMENT} colour is {initial}, not --text {rgb(hex0)}: cannot measure")
    offset = clock_offset_ms(page)
    log(f"frontend: page clock minus Python clock: {offset}")

    blue = int(hex0[4:6], 16)
    plan: list[tuple[bytes, str]] = []
    for k in range(1, args.runs):
        b = blue + k if blue + k <= 255 else blue - k
        hexk = f"{hex0[:4]}{b:02x}"
        data = source[: match.start(2)] + hexk.encode() + source[match.end(2) :]
        plan.append((data, rgb(hexk)))
    plan.append((source, rgb(hex0)))

    runs: list[dict[str, Any]] = []
    edit = FileEdit(CSS_FILE)
    try:
        for i, (data, expected) in enumerate(plan, 1):
            time.sleep(args.settle)
            page.evaluate("window.__benchHmr.events = []")
            saved = edit.write(data) * 1000
            found = wait_until(
                lambda exp=expected: bool(
                    page.evaluate(
                        "(c) => !!window.__benchHmr && window.__benchHmr.events"
                        ".some((e) => e.kind === 'frame' && e.color === c)",
                        exp,
                    )
                ),
                timeout=args.run_timeout,
                step=0.02,
            )
            events = page.evaluate("window.__benchHmr ? window.__benchHmr.events : [{kind: 'full-reload', t: 0}]")
            first: dict[str, dict[str, Any]] = {}
            for e in events:
                first.setdefault(e["kind"], e)
            corr = offset["offset_ms"]
            since_save = functools.partial(_since, first, saved + corr)
            run = {
                "run": i,
                "writes_original": data == source,
                "save_to_hmr_message_ms": since_save("message"),
                "save_to_applied_ms": since_save("applied"),
                "save_to_next_frame_ms": since_save("frame"),
                "applied_color_ok": first.get("applied", {}).get("color") == expected,
                "full_reload": "full-reload" in first,
                "paths": first.get("message", {}).get("paths"),
            }
            log(f"frontend run {i}: {run}")
            runs.append(run)
            if not found:
                raise RuntimeError(f"run {i}: the page did not show {expected} within {args.run_timeout} s")
    finally:
        restored = edit.restore()
        log(f"frontend: {CSS_FILE.relative_to(REPO)}: {restored}")

    applied = [r["save_to_applied_ms"] for r in runs if r["save_to_applied_ms"] is not None]
    frames = [r["save_to_next_frame_ms"] for r in runs if r["save_to_next_frame_ms"] is not None]
    messages = [r["save_to_hmr_message_ms"] for r in runs if r["save_to_hmr_message_ms"] is not None]
    headline = applied or frames
    return {
        "file": str(CSS_FILE.relative_to(REPO)),
        "edit": f"--text colour of the light theme, blue +k; read as getComputedStyle({CSS_ELEMENT}).color",
        "browser": f"{CHROMIUM} via Playwright, headless, through the proxy",
        "clock": offset,
        "save_to_applied_ms": summary(applied, 1),
        "save_to_next_frame_ms": summary(frames, 1),
        "save_to_hmr_message_ms": summary(messages, 1),
        "target_ms": FRONTEND_TARGET_MS,
        "target_met": bool(headline) and max(headline) <= FRONTEND_TARGET_MS,
        "runs": runs,
        "file_restore": restored,
    }


# --- main ----------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="bench")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--runs", type=int, default=5, help="saves per part (2..10); the last writes the original")
    parser.add_argument("--poll-ms", type=float, default=15.0, help="backend: pause between polls")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between runs (lets every reload finish)")
    parser.add_argument("--run-timeout", type=float, default=30.0)
    parser.add_argument("--only", choices=["backend", "frontend"])
    parser.add_argument("--keep", action="store_true", help="leave the instance up")
    args = parser.parse_args()
    args.runs = max(2, min(args.runs, 10))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupted)

    report: dict[str, Any] = {"benchmark": "reload", "command": " ".join([sys.executable, *sys.argv])}
    report.update(environment())
    inst = StackInstance(args.project, args.port, "dev")
    failed = False
    pw_cm = browser = None
    try:
        report["instance"] = inst.up()
        page = None
        if args.only != "backend":
            try:
                from playwright.sync_api import sync_playwright
            except ImportError:
                report["frontend"] = {"error": "playwright is not installed: .venv/bin/pip install playwright"}
            else:
                pw_cm = sync_playwright()
                browser, page = open_browser(pw_cm.__enter__(), args.port)
        # The backend part runs with the app open in the browser (as a developer has it): its live-updates
        # WebSocket is one of the connections the old worker closes on reload.
        if args.only != "frontend":
            report["backend_browser_page_open"] = page is not None
            try:
                report["backend"] = bench_backend(inst, args)
            except (RuntimeError, ConcurrentEdit, OSError, psutil.Error) as exc:
                failed = True
                report["backend"] = {"error": str(exc)}
        if page is not None:
            try:
                report["frontend"] = bench_frontend(page, args)
            except (RuntimeError, ConcurrentEdit, OSError) as exc:
                failed = True
                report["frontend"] = {"error": str(exc)}
    except (Exception, KeyboardInterrupt) as exc:  # reported in the JSON; exit 1
        failed = True
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if browser is not None:
            with contextlib.suppress(Exception):
                browser.close()
        if pw_cm is not None:
            with contextlib.suppress(Exception):
                pw_cm.__exit__(None, None, None)
        if inst.brought_up and not args.keep:
            report["teardown"] = inst.down()
        else:
            report["teardown"] = "left up (" + ("--keep" if args.keep else "it was up before this run") + ")"
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if note := busy_warning(report):
        report["warning"] = note
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
