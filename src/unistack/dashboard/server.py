"""The dashboard's HTTP server (aiohttp): the page and its assets from the package, the JSON endpoints, the two
SSE streams and the actions, behind a Host check (its loopback names on its port only: DNS rebinding), the token
(query, cookie or ``X-Unistack-Token``) and, for every POST, an Origin check. docs/dashboard.md lists every
endpoint. Never reads the instance itself (``sources.py``), never changes anything on a GET, never prints
(``commands/dashboard.py`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from unistack.dashboard.live import Live, batches, sse
from unistack.dashboard.records import ActionReply, DaemonInfo, InstanceInfo, ValidateReport, encode
from unistack.dashboard.sources import ActionRefused, DaemonAway, Sources
from unistack.dashboard.views import entry
from unistack.errors import UnistackError

COOKIE = "unistack_dashboard"
TOKEN_HEADER = "X-Unistack-Token"
VERBS = ("restart", "stop", "start")
PING_EVERY = 15.0
MAX_TAIL = 5000
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # the Host header's names it answers (DNS rebinding)


def static_dir() -> Path:
    return Path(str(resources.files("unistack.dashboard") / "static"))


class Dashboard:
    """One instance's dashboard: its token, its origin (known once it listens) and its last validate report."""

    def __init__(self, sources: Sources, token: str | None = None, static: Path | None = None) -> None:
        self.sources = sources
        self.token = token or secrets.token_urlsafe(24)
        self.static = static or static_dir()
        self.live = Live(sources)
        self.port: int | None = None
        self.report: ValidateReport | None = None
        self.validating = asyncio.Lock()

    # ----------------------------------------------------------------- the application

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.index)
        app.router.add_static("/static", self.static, append_version=False)
        app.router.add_get("/api/instance", self.instance)
        app.router.add_get("/api/services", self.services)
        app.router.add_get("/api/services/{name}", self.service)
        app.router.add_post("/api/services/{name}/{verb}", self.act)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/stream", self.stream)
        app.router.add_get("/api/logs/stream", self.logs_stream)
        app.router.add_get("/api/validate", self.last_validate)
        app.router.add_post("/api/validate", self.run_validate)
        return app

    def origins(self, request: web.Request) -> set[str]:
        """This server's own origins (127.0.0.1 and localhost on its port)."""
        port = self._port(request)
        return {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}

    def hosts(self, request: web.Request) -> set[str]:
        """The Host headers this server answers: its loopback names on its port (a DNS-rebinding page sends its own
        name, which is refused)."""
        return {f"{name}:{self._port(request)}" for name in LOOPBACK_NAMES}

    def _port(self, request: web.Request) -> int:
        return self.port or (request.url.port if request.url.port is not None else 80)

    def _cookie_name(self) -> str:
        return f"{COOKIE}_{self.port}" if self.port else COOKIE

    def _authorised(self, request: web.Request) -> tuple[bool, bool]:
        """(has the token at all, has it in the script header)."""
        header = request.headers.get(TOKEN_HEADER, "")
        offered = [request.query.get("token", ""), header, request.cookies.get(self._cookie_name(), "")]
        offered.append(request.cookies.get(COOKIE, ""))  # cookies ignore ports: another dashboard may have won it
        good = any(secrets.compare_digest(t.encode(), self.token.encode()) for t in offered if t)
        return good, bool(header) and secrets.compare_digest(header.encode(), self.token.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "").lower()
        hosts = self.hosts(request)
        if host not in hosts:
            return web.Response(
                status=421,
                text=f"421: this dashboard answers only the hosts {', '.join(sorted(hosts))}, not {host or '(none)'!r} "
                "(a page of another name may not reach it); open the address `unistack dashboard` printed\n",
            )
        good, scripted = self._authorised(request)
        if not good:
            return web.Response(
                status=401, text="401: this dashboard needs its token; open the address `unistack dashboard` printed\n"
            )
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin is None and not scripted:
                return web.Response(
                    status=403, text=f"403: a POST needs an Origin header, or the {TOKEN_HEADER} header\n"
                )
            if origin is not None and origin not in self.origins(request):
                return web.Response(
                    status=403, text=f"403: a POST from {origin} is refused (not this dashboard's page)\n"
                )
        response: web.StreamResponse = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # ----------------------------------------------------------------- the page

    async def index(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(self.static / "index.html")
        token = request.query.get("token", "")
        if token and secrets.compare_digest(token.encode(), self.token.encode()):
            for name in {COOKIE, self._cookie_name()}:
                response.set_cookie(name, self.token, httponly=True, samesite="Strict", path="/")
        response.headers["Referrer-Policy"] = "no-referrer"  # the token never leaves in a Referer
        return response

    # ----------------------------------------------------------------- JSON

    async def instance(self, request: web.Request) -> web.Response:
        address, connected = None, False
        with contextlib.suppress(DaemonAway):
            address, connected = entry(await self.sources.rows(), self.sources.needs), True
        info = InstanceInfo(
            project=self.sources.project,
            runtime=self.sources.runtime,
            environment=self.sources.environment,
            entry=address,
            daemon=DaemonInfo(pid=self.sources.daemon_pid() if connected else None, connected=connected),
        )
        return _json(info)

    async def services(self, request: web.Request) -> web.Response:
        try:
            return _json(await self.live.snapshot())
        except DaemonAway as exc:
            return _error(503, str(exc))

    async def service(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.sources.needs:
            return _error(404, f"no such service: {name}; the project {self.sources.project!r} has: {_names(self)}")
        try:
            snap = await self.live.snapshot()
        except DaemonAway as exc:
            return _error(503, str(exc))
        for view in snap.services:
            if view.service == name:
                return _json(view)
        return _error(404, f"{name} is not part of the running instance")

    async def events(self, request: web.Request) -> web.Response:
        limit = _number(request, "limit", 200, 100_000)
        if limit is None:
            return _error(400, "limit takes a whole number of events")
        events = await asyncio.to_thread(self.sources.events, limit)
        return web.Response(body=b'{"events":' + encode(events) + b"}", content_type="application/json")

    # ----------------------------------------------------------------- actions

    async def act(self, request: web.Request) -> web.Response:
        name, verb = request.match_info["name"], request.match_info["verb"]
        if verb not in VERBS:
            return _error(404, f"no such action: {verb}; the actions are {', '.join(VERBS)}")
        if name not in self.sources.needs:
            return _error(404, f"no such service: {name}; the project {self.sources.project!r} has: {_names(self)}")
        try:
            await self.sources.act(verb, name)
            snap = await self.live.snapshot()
        except ActionRefused as exc:
            return _error(exc.status, str(exc))
        except DaemonAway as exc:
            return _error(409, str(exc))
        return _json(ActionReply(ok=True, services=snap.services))

    async def last_validate(self, request: web.Request) -> web.Response:
        return _json(self.report)

    async def run_validate(self, request: web.Request) -> web.Response:
        if self.validating.locked():
            return _error(409, "a validate is running already; its report comes when it ends")
        async with self.validating:
            try:
                self.report = await self.sources.validate()
            except UnistackError as exc:
                return _error(409 if "not up" in str(exc) else 500, str(exc))
        return _json(self.report)

    # ----------------------------------------------------------------- streams

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = await _open_stream(request)
        with contextlib.suppress(ConnectionError):  # the page went away
            async with self.live.subscribe() as queue:
                while True:
                    try:
                        name, data = await asyncio.wait_for(queue.get(), PING_EVERY)
                    except TimeoutError:
                        await response.write(sse(None))
                        continue
                    await response.write(sse(name, data))
        return response

    async def logs_stream(self, request: web.Request) -> web.StreamResponse:
        wanted = [s for s in request.query.get("services", "").split(",") if s]
        unknown = [s for s in wanted if s not in self.sources.needs]
        if unknown:
            return _error(404, f"no such service: {', '.join(unknown)}; the project has: {_names(self)}")
        tail = _number(request, "tail", 200, MAX_TAIL)
        if tail is None:
            return _error(400, "tail takes a whole number of lines")
        response = await _open_stream(request)
        with contextlib.suppress(ConnectionError):  # the page went away
            async for batch in batches(self.sources.follow_logs(wanted, tail)):
                await response.write(sse("lines", encode(batch)) if batch else sse(None))
        return response


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    return response


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=encode(value), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(ActionReply(ok=False, error=message), status)


def _names(dashboard: Dashboard) -> str:
    return ", ".join(dashboard.sources.needs)


def _number(request: web.Request, key: str, default: int, most: int) -> int | None:
    text = request.query.get(key, "")
    if not text:
        return default
    return min(int(text), most) if text.isdigit() else None
