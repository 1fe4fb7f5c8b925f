"""Declared ``browser`` checks (with ``validate --browser``): the page loaded in headless Chromium, driven over
the Chrome DevTools Protocol on its WebSocket, must render ``selector`` (its text matching ``text``) with no
console error, uncaught exception or failed load on the way.

Chromium is the system's (``/usr/bin/chromium``, Debian's ``chromium``; ``UNISTACK_CHROMIUM`` names another),
started with a fresh profile in a temporary folder and killed (its whole process group) when the check ends;
nothing is ever downloaded. Without ``--browser``, or without Chromium, the check is skipped with the reason.
When the site answers another Host than the address connected to (``validate --target swarm``: a node's address),
the page is loaded at the site's own name and Chromium's ``--host-resolver-rules`` sends it to the address.
At most ``AT_ONCE`` Chromiums run at a time (one check per swarm node would otherwise start one per node at once:
a few hundred MB each); a check's time counts from when its Chromium starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from unistack.ops.checks_http import NoEntry, entry_url
from unistack.ops.validate import Context, Outcome, failed, passed, skipped

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from unistack.config.model import DeclaredCheck

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
)
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
POLL = 0.05
AT_ONCE = 2  # Chromiums running at a time
PAGE_WITHIN = 25.0  # seconds at least for Chromium to start and the page to load
_running: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}  # one limit per event loop (a validate run)


def _limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    for old in [other for other in _running if other.is_closed()]:
        del _running[old]
    return _running.setdefault(loop, asyncio.Semaphore(AT_ONCE))


def find_chromium() -> str | None:
    wanted = os.environ.get("UNISTACK_CHROMIUM")
    for name in ([wanted] if wanted else []) + list(CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    return None


def check(ctx: Context, declared: DeclaredCheck) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        if not ctx.browser:
            return skipped("loads the page in headless Chromium: run `unistack validate --browser`")
        chromium = ctx.chromium or find_chromium()
        if chromium is None:
            return skipped("no Chromium found (apt-get install chromium, or set UNISTACK_CHROMIUM)")
        try:
            base, _ = entry_url(ctx, declared.service)
        except NoEntry as exc:
            return failed(str(exc))
        url, flags = site_url(base, declared.path, ctx.host_header)
        async with _limit():
            deadline = time.monotonic() + max(declared.timeout or 0.0, ctx.timeout, PAGE_WITHIN)
            return await load_page(chromium, url, declared, deadline, flags)

    return run


def site_url(base: str, path: str, host_header: str | None) -> tuple[str, tuple[str, ...]]:
    """The URL the browser loads and the flags it needs: with a Host the site answers (``--host-header``, or the
    stack's own site on a swarm node), the site's own URL, its name mapped to the address of ``base`` by
    Chromium's host resolver, so Host, Origin and cookies are all the site's while the connection goes to the
    node (each connection to that name, whatever its port)."""
    if not host_header:
        return base + path, ()
    address = urlsplit(base)
    name = urlsplit(f"//{host_header}").hostname or host_header  # an IPv6 literal unbracketed: Chromium's pattern
    return f"{address.scheme}://{host_header}{path}", (f"--host-resolver-rules=MAP {name} {address.netloc}",)


async def load_page(
    chromium: str, url: str, declared: DeclaredCheck, deadline: float, flags: tuple[str, ...] = ()
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="unistack-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            *FLAGS,
            *flags,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            page = await _page_socket(Path(profile), deadline)
            if page is None:
                return failed(f"{chromium} did not open its DevTools port in time")
            return await _drive(page, url, declared, deadline)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _page_socket(profile: Path, deadline: float) -> str | None:
    """The DevTools WebSocket of the browser's first page, once DevToolsActivePort names the port."""
    import httpx

    port_file = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        lines = port_file.read_text().split() if port_file.exists() else []
        if len(lines) >= 2:
            async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    targets = (await http.get(f"http://127.0.0.1:{lines[0]}/json/list")).json()
                    for target in targets:
                        if target.get("type") == "page" and target.get("webSocketDebuggerUrl"):
                            return str(target["webSocketDebuggerUrl"])
        await asyncio.sleep(POLL)
    return None


class Session:
    """One DevTools connection: calls by id, events collected as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.problems: list[str] = []

    async def read(self) -> None:
        async for message in self.ws:
            data = json.loads(message)
            if "id" in data and (future := self.waiting.pop(data["id"], None)) is not None:
                if not future.done():
                    future.set_result(data)
            else:
                self.event(data.get("method", ""), data.get("params") or {})

    def event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            text = (details.get("exception") or {}).get("description") or details.get("text", "")
            self.problems.append(f"uncaught {text.splitlines()[0] if text else 'exception'}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args") or []]
            self.problems.append("console error: " + " ".join(args)[:200])
        elif method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
            entry = params["entry"]
            if urlsplit(str(entry.get("url", ""))).path == "/favicon.ico":
                return  # asked for by the browser itself, not by the page: a site without one is not broken
            self.problems.append(
                f"{entry.get('source', 'log')} error: {entry.get('text', '')[:160]} {entry.get('url', '')}"
            )

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        reply = await future
        if "error" in reply:
            raise ValueError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result") or {}
        return result


async def _drive(page_ws: str, url: str, declared: DeclaredCheck, deadline: float) -> Outcome:
    from websockets.asyncio.client import connect

    began = time.monotonic()
    selector = declared.selector or "body"
    pattern = re.compile(declared.text) if declared.text else None
    expression = (
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); return e ? e.textContent : null }})()"
    )
    async with connect(page_ws, max_size=None, proxy=None, open_timeout=5) as ws:
        session = Session(ws)
        reader = asyncio.create_task(session.read())
        try:
            for domain in ("Runtime", "Log", "Page"):
                await session.call(f"{domain}.enable")
            navigated = await session.call("Page.navigate", url=url)
            if navigated.get("errorText"):
                return failed(f"{url}: {navigated['errorText']}", "see `unistack validate` without --browser")
            text: str | None = None
            while time.monotonic() < deadline:
                answer = await session.call("Runtime.evaluate", expression=expression, returnByValue=True)
                value = (answer.get("result") or {}).get("value")
                text = value if isinstance(value, str) else None
                if text is not None and (pattern is None or pattern.search(text.strip())):
                    break
                await asyncio.sleep(POLL)
            else:
                shown = "not on the page" if text is None else f"shows {text.strip()[:80]!r}"
                problems = "; ".join(session.problems[:3])
                return failed(
                    f"{url}: {selector} {shown} after {time.monotonic() - began:.1f}s"
                    + (f"; {problems}" if problems else ""),
                    f"see `unistack logs {declared.component}`",
                )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    if session.problems:
        return failed(f"{url} rendered, but: " + "; ".join(session.problems[:5]), "open the page's console")
    return passed(f"{url}: {selector} shows {text.strip()[:60]!r}, no console errors")
