"""The checks that talk to the instance through its entry point: the published TCP port of the project's entry
service (the one service that publishes one, or the ``service:`` a check names). Declared ``http`` checks (a
request, or a sequence of them with saved values and clean-up steps), ``assets`` (the hashed files a page links
load with long-lived caching and compression) and ``websocket`` (a real upgrade), plus the built-in "entry point
answers". Never starts or stops anything; never reads the daemon (the rows come in the Context).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from unistack.ops.checks_builtin import service_environment
from unistack.ops.validate import Check, Context, Outcome, failed, passed, skipped

if TYPE_CHECKING:
    from unistack.config.model import DeclaredCheck, HttpStep

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']?(/assets/[^"'\s>]+\.(?:js|css))""")
MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)")
SAVED = re.compile(r"\{(\w+)\}")


class NoEntry(Exception):
    """No address to send requests to; the message says why and the fix."""


def entry_url(ctx: Context, service: str | None, scheme: str = "http") -> tuple[str, str]:
    """(base URL, entry service) for requests: the published TCP port of ``service``, or of the one service
    that publishes a TCP port."""
    published = {
        row.service: port for row in ctx.rows for port in reversed(row.ports) if port.protocol == "tcp"
    }  # the first TCP port of each service
    if service is not None:
        if service not in published:
            raise NoEntry(f"service {service!r} publishes no TCP port")
        name = service
    elif len(published) == 1:
        (name,) = published
    elif not published:
        raise NoEntry("no service publishes a TCP port, so there is no entry point to send requests to")
    else:
        raise NoEntry(
            f"several services publish TCP ports ({', '.join(sorted(published))}): name the entry with service: "
            "in the check"
        )
    port = published[name]
    host = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port.host_port}", name


@functools.cache
def tls() -> ssl.SSLContext:
    """The one TLS context of every client in this process. Left to itself, httpx builds one per client, loading
    the whole CA bundle synchronously on the event loop: tens of milliseconds each, seconds for a dozen checks on
    a loaded machine, during which no other check runs while its clock does (``db isolated``, waiting on two
    engine round trips, ran out of its 5 s that way)."""
    return httpx.create_ssl_context(trust_env=False)


def prepare(ctx: Context) -> None:
    """Before any check's clock starts: the TLS context, and what httpx and websockets import on first use
    (httpcore and anyio's asyncio backend; the WebSocket client): imported on the event loop otherwise, inside the
    first checks' time, which takes seconds on a loaded machine and stalls every check beside them."""
    modules = []
    if ctx.transport is None:
        modules += ["httpcore", "anyio._backends._asyncio"]  # the latter is anyio's own layout: a miss is harmless
        tls()
    if ctx.ws_connect is None and any(declared.kind == "websocket" for declared in ctx.project.validate):
        modules.append("websockets.asyncio.client")
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def client(ctx: Context, base_url: str, timeout: float) -> httpx.AsyncClient:
    # trust_env=False: straight to the instance, whatever HTTP(S)_PROXY the shell has
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=ctx.transport,
        verify=tls(),
        trust_env=False,
        follow_redirects=False,
        headers={"host": ctx.host_header} if ctx.host_header else None,
    )


def checks(ctx: Context) -> list[Check]:
    """Built in: the entry point answers HTTP at all (any status), when the project has one."""
    try:
        base, service = entry_url(ctx, None)
    except NoEntry:
        return []
    if not ctx.wanted(service):
        return []

    async def run() -> Outcome:
        async with client(ctx, base, ctx.timeout) as http:
            try:
                response = await http.request("HEAD", "/")
            except httpx.HTTPError as exc:
                return failed(f"{base}: {_explain(exc, ctx.timeout)}", f"see `unistack logs {service}`")
        return passed(f"{base} answered {response.status_code}")

    return [Check("entry point answers", service, run)]


def check(ctx: Context, declared: DeclaredCheck) -> Callable[[], Awaitable[Outcome]]:
    kinds = {"http": run_http, "assets": run_assets, "websocket": run_websocket}
    runner = kinds[declared.kind]

    async def run() -> Outcome:
        try:
            base, entry = entry_url(ctx, declared.service)
        except NoEntry as exc:
            return failed(str(exc), "publish the entry service's port, or name it with service:")
        return await runner(ctx, declared, base, entry)

    return run


# ----------------------------------------------------------------------------- http


async def run_http(ctx: Context, declared: DeclaredCheck, base: str, entry: str) -> Outcome:
    budget = declared.timeout or ctx.timeout
    deadline = time.monotonic() + budget
    saved: dict[str, str] = {}
    failure: Outcome | None = None
    seen = []
    async with client(ctx, base, budget) as http:
        for step in declared.http:
            if failure is not None and not step.always:
                continue
            path = SAVED.sub(lambda m: saved.get(m.group(1), m.group(0)), step.path)
            remaining = max(deadline - time.monotonic(), 1.0 if step.always else 0.05)
            headers = dict(step.headers)
            if step.origin is not None:
                headers["origin"] = step.origin
            try:
                async with asyncio.timeout(remaining):  # the whole exchange (httpx's timeouts are per phase)
                    response = await http.request(
                        step.method,
                        path,
                        headers=headers,
                        json=step.body if step.body is not None else None,
                        timeout=remaining,
                    )
            except TimeoutError:
                failure = failure or failed(
                    f"{step.method} {path}: no answer within {remaining:.3g}s",
                    f"see `unistack logs {declared.component}`",
                )
                continue
            except httpx.HTTPError as exc:
                failure = failure or _transport_failure(exc, f"{step.method} {path}", entry, declared, remaining)
                continue
            problems = judge(step, response, lambda name: _env(ctx, declared.component, name))
            if problems:
                failure = failure or failed(
                    f"{step.method} {path} -> {response.status_code}: " + "; ".join(problems),
                    _hint(declared, response.status_code, problems),
                )
                continue
            seen.append(f"{step.method} {path} -> {response.status_code}")
            for name, where in step.save.items():
                found, value = lookup(_json(response), where)
                if found:
                    saved[name] = str(value)
    return failure or passed(", ".join(seen))


def judge(step: HttpStep, response: httpx.Response, env: Callable[[str], str | None]) -> list[str]:
    """What is wrong with the answer, as short phrases (empty: it is as expected)."""
    problems = []
    status = response.status_code
    if step.expect_status and status not in step.expect_status:
        problems.append(f"expected status {' or '.join(map(str, step.expect_status))}")
    elif not step.expect_status and status >= 400:
        problems.append("expected a status below 400")
    for name, pattern in step.expect_header.items():
        value = ", ".join(response.headers.get_list(name))
        if not value:
            problems.append(f"no {name} header")
        elif not _matches(pattern, value):
            problems.append(f"{name} is {value[:120]!r}, expected {pattern!r}")
    for name in step.expect_no_header:
        if name in response.headers:
            problems.append(f"{name}: {response.headers[name][:120]!r} should not be sent")
    if step.expect_json or step.expect_env:
        data = _json(response)
        if data is _NOT_JSON:
            return [*problems, f"the answer is not JSON ({response.text[:80]!r})"]
        for where, want in step.expect_json.items():
            found, value = lookup(data, where)
            if not found:
                problems.append(f"no {where} in the answer")
            elif not _same(value, want):
                problems.append(f"{where} is {_text(value)!r}, expected {_text(want)!r}")
        for where, variable in step.expect_env.items():
            want = env(variable)
            found, value = lookup(data, where)
            if want is None:
                problems.append(f"{variable} is not set in the configuration")
            elif not found:
                problems.append(f"no {where} in the answer")
            elif not _same(value, want):
                problems.append(f"{where} is {_text(value)!r}, the configuration gives {want!r} ({variable})")
    return problems


_NOT_JSON = object()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def lookup(data: Any, dotted: str) -> tuple[bool, Any]:
    """``checks.database.ok`` in nested mappings (a number indexes a list); (found, value)."""
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _same(value: Any, want: Any) -> bool:
    """Equal, or equal as text (``true`` from the file's interpolation is the string "true")."""
    return bool(value == want or _text(value).lower() == _text(want).lower())


def _matches(pattern: str, value: str) -> bool:
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        return re.search(pattern[1:-1], value) is not None
    return pattern.lower() in value.lower()


def _env(ctx: Context, component: str, variable: str) -> str | None:
    service = ctx.project.services.get(component)
    if service is None:
        return ctx.project.variables.get(variable)
    return service_environment(ctx.project, service, ctx.runtime_name).get(variable)


def _hint(declared: DeclaredCheck, status: int, problems: list[str]) -> str:
    if any("the configuration gives" in p for p in problems):
        return f"{declared.component} runs with another configuration than the files give: run `unistack up`"
    return f"see `unistack logs {declared.component}`"


def _transport_failure(exc: httpx.HTTPError, what: str, entry: str, declared: DeclaredCheck, budget: float) -> Outcome:
    if isinstance(exc, httpx.ConnectError):  # nobody at the entry point: the entry service is to blame
        return failed(f"{what}: {_explain(exc, budget)}", f"see `unistack ps` and `unistack logs {entry}`", entry)
    return failed(f"{what}: {_explain(exc, budget)}", f"see `unistack logs {declared.component}`")


def _explain(exc: httpx.HTTPError, budget: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {budget:.3g}s"
    return str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------- assets


async def run_assets(ctx: Context, declared: DeclaredCheck, base: str, entry: str) -> Outcome:
    budget = declared.timeout or ctx.timeout
    async with client(ctx, base, budget) as http:
        try:
            page = await http.get(declared.path, headers={"accept": "text/html"})
        except httpx.HTTPError as exc:
            return _transport_failure(exc, f"GET {declared.path}", entry, declared, budget)
        if page.status_code != 200:
            return failed(f"GET {declared.path} -> {page.status_code}", f"see `unistack logs {declared.component}`")
        assets = sorted(set(ASSET.findall(page.text)))
        if not assets:
            return skipped(f"{declared.path} links no hashed assets (/assets/*.js|css): a development server?")
        headers = {"accept-encoding": declared.encoding} if declared.encoding else {}
        try:
            answers = await asyncio.gather(*(http.get(path, headers=headers) for path in assets))
        except httpx.HTTPError as exc:
            return _transport_failure(exc, "GET the assets", entry, declared, budget)
    problems = [
        p for path, answer in zip(assets, answers, strict=True) for p in _asset_problems(declared, path, answer)
    ]
    if problems:
        return failed("; ".join(problems[:5]), "serve hashed assets with Cache-Control: max-age=..., immutable")
    return passed(f"{len(assets)} assets: cached, {declared.encoding or 'uncompressed'}")


def _asset_problems(declared: DeclaredCheck, path: str, answer: httpx.Response) -> list[str]:
    if answer.status_code != 200:
        return [f"{path} -> {answer.status_code}"]
    problems = []
    cache = answer.headers.get("cache-control", "")
    ages = [int(age) for age in MAX_AGE.findall(cache)]
    if "immutable" not in cache.lower() and not any(age >= declared.max_age for age in ages):
        problems.append(f"{path}: Cache-Control {cache!r}, expected max-age>={declared.max_age} or immutable")
    encoding = answer.headers.get("content-encoding", "")
    if declared.encoding and declared.encoding not in encoding:
        problems.append(f"{path}: Content-Encoding {encoding!r} when asked for {declared.encoding}")
    return problems


# ----------------------------------------------------------------------------- websocket


async def run_websocket(ctx: Context, declared: DeclaredCheck, base: str, entry: str) -> Outcome:
    budget = declared.timeout or ctx.timeout
    url = "ws" + base.removeprefix("http") + declared.path
    origin = base
    connect = ctx.ws_connect or open_websocket
    if ctx.host_header:  # the site's own name in the URL and the Origin; the connection to the address of base
        parsed = httpx.URL(base)
        url, origin = f"ws://{ctx.host_header}{declared.path}", f"http://{ctx.host_header}"
        connect = ctx.ws_connect or functools.partial(open_websocket, address=(parsed.host, parsed.port or 80))
    try:
        async with asyncio.timeout(budget):
            what = await connect(url, {"origin": origin}, budget)
    except TimeoutError:
        return failed(f"{url}: no upgrade within {budget:g}s", f"see `unistack logs {declared.component}`")
    except OSError as exc:
        component = entry if isinstance(exc, ConnectionRefusedError) else None
        return failed(f"{url}: {exc}", f"see `unistack logs {component or declared.component}`", component)
    except ValueError as exc:  # the handshake was refused (a status other than 101, bad headers)
        return failed(f"{url}: {exc}", f"see `unistack logs {declared.component}`")
    return passed(f"{url}: {what}")


async def open_websocket(
    url: str, headers: Mapping[str, str], timeout: float, address: tuple[str, int] | None = None
) -> str:
    """A real upgrade: connect (to ``address`` when given, else to the URL's host), then close cleanly."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, WebSocketException

    where: dict[str, Any] = {"host": address[0], "port": address[1]} if address else {}
    try:
        async with connect(
            url, additional_headers=dict(headers), open_timeout=timeout, close_timeout=1, proxy=None, **where
        ) as ws:
            status = ws.response.status_code if ws.response is not None else 101
        return f"upgraded ({status})"
    except InvalidHandshake as exc:
        raise ValueError(f"the upgrade was refused: {exc}") from exc
    except WebSocketException as exc:
        raise ValueError(str(exc)) from exc
