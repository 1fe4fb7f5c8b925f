"""``validate``: the checks that prove a running instance works, run concurrently, each bounded by a timeout.

Owns the records (``CheckResult``: name, component, verdict, duration, detail, hint; what ``--format json``
prints), what a check is (``Check``: a name, the component it blames, a coroutine giving an ``Outcome``), what
the checks may read (``Context``: the project from the files, the one the daemon runs, the ``ps`` rows, seams
for HTTP, WebSocket and the runtime), the plan (built-in checks for any file, then the ``x-unistack.validate``
entries) and the runner. Never prints (``report.py`` formats) and never exits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec

from unistack.runtimes import RuntimeName

if TYPE_CHECKING:
    import httpx

    from unistack.config.model import DeclaredCheck, Project
    from unistack.engine.states import ServiceRow
    from unistack.runtimes.base import Runtime

Verdict = Literal["pass", "fail", "skip"]
DEFAULT_TIMEOUT = 5.0
FLAPPING_WINDOW = 300.0  # seconds: a restart this recent makes a service flapping, even if healthy now
BROWSER_TIMEOUT = 30.0  # at least: Chromium has to start
GRACE = 1.0  # past its timeout, a check that did not stop by itself is cancelled


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One check's verdict, as ``validate --format json`` prints it (duration in seconds)."""

    name: str
    component: str
    verdict: Verdict
    duration: float
    detail: str = ""
    hint: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a check found; ``component`` overrides the check's own (a refused connection blames the entry)."""

    verdict: Verdict
    detail: str = ""
    hint: str = ""
    component: str | None = None


def passed(detail: str = "") -> Outcome:
    return Outcome("pass", detail)


def failed(detail: str, hint: str = "", component: str | None = None) -> Outcome:
    return Outcome("fail", detail, hint, component)


def skipped(detail: str) -> Outcome:
    return Outcome("skip", detail)


@dataclass(frozen=True)
class Check:
    name: str
    component: str
    run: Callable[[], Awaitable[Outcome]]
    timeout: float | None = None  # None: the run's default


WsConnect = Callable[[str, Mapping[str, str], float], Awaitable[str]]
"""Open a WebSocket (url, headers, timeout), close it, and say what answered; raise OSError or ValueError."""


@dataclass
class Context:
    """What the checks read. ``project`` is what the files give now; ``running`` what the daemon runs (its
    ``project.json``; None when it saved none; ``project`` too when the files do not load, and ``files_problem``
    says why). ``transport``, ``ws_connect`` and ``runtime`` are seams."""

    project: Project
    running: Project | None
    rows: list[ServiceRow]
    runtime_name: RuntimeName
    selected: Sequence[str] = ()
    timeout: float = DEFAULT_TIMEOUT
    write: bool = False
    browser: bool = False
    chromium: str | None = None
    now: float = field(default_factory=time.time)
    flapping_window: float = FLAPPING_WINDOW
    transport: httpx.AsyncBaseTransport | None = None
    ws_connect: WsConnect | None = None
    runtime: Callable[[], Runtime] | None = None
    files_problem: str | None = None  # the files did not load: ``project`` is the one the instance was started with
    host_header: str | None = None  # the Host the entry's site answers when it is not the address connected to
    changed: list[str] | None = None  # a deployment's drift, found by its target (None: compare ``running``)

    def row(self, service: str) -> ServiceRow | None:
        return next((row for row in self.rows if row.service == service), None)

    def wanted(self, service: str) -> bool:
        return not self.selected or service in self.selected


ENTRY_KINDS = frozenset({"http", "assets", "websocket", "browser"})
"""Declared checks that go through the entry point (``plan(entry_only=True)``: another address of the same one)."""


def plan(ctx: Context, entry_only: bool = False) -> list[Check]:
    """Every check for this instance: built-in first, then the declared ones in file order; ``entry_only``: just
    those that send requests to the entry point (run again for each node of a cluster)."""
    from unistack.ops import checks_builtin, checks_http, isolation

    checks_http.prepare(ctx)  # the checks' imports and shared set-up, outside every check's time
    if not entry_only:
        isolation.prepare(ctx)
    checks = checks_http.checks(ctx)
    if not entry_only:
        checks = [*checks_builtin.checks(ctx), *isolation.checks(ctx), *checks]
    for declared in ctx.project.validate:
        if ctx.selected and declared.component not in ctx.selected and declared.service not in ctx.selected:
            continue
        if entry_only and declared.kind not in ENTRY_KINDS:
            continue
        checks.append(declared_check(ctx, declared))
    return checks


def declared_check(ctx: Context, declared: DeclaredCheck) -> Check:
    """One ``x-unistack.validate`` entry as a check (write checks and browser checks may skip themselves)."""
    from unistack.ops import browser, checks_command, checks_http

    timeout = declared.timeout
    if declared.write and ctx.project.environment == "production" and not ctx.write:
        reason = "changes data, and this is production: run `unistack validate --write` to include it"
        return Check(declared.name, declared.component, constant(skipped(reason)))
    if declared.kind == "browser":
        run = browser.check(ctx, declared)
        timeout = max(timeout or 0.0, ctx.timeout, BROWSER_TIMEOUT)
    elif declared.kind == "command":
        run = checks_command.check(ctx, declared)
    else:
        run = checks_http.check(ctx, declared)
    return Check(declared.name, declared.component, run, timeout)


def constant(outcome: Outcome) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        return outcome

    return run


async def run_checks(
    checks: Sequence[Check], timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], float] = time.monotonic
) -> list[CheckResult]:
    """Run every check at once, each bounded by its timeout; results in the checks' order. A check that raises
    or runs out of time fails with what happened; nothing here raises."""
    return list(await asyncio.gather(*(_run_one(check, timeout, clock) for check in checks)))


async def _run_one(check: Check, default: float, clock: Callable[[], float]) -> CheckResult:
    limit = check.timeout if check.timeout is not None else default
    began = clock()
    try:
        async with asyncio.timeout(limit + GRACE):
            outcome = await check.run()
    except TimeoutError:
        outcome = failed(f"no verdict within {limit:g}s", f"see `unistack logs {check.component}`")
    except Exception as exc:  # a check's own bug or an unexpected library error: a failed check, not a traceback
        outcome = failed(f"the check could not run: {type(exc).__name__}: {exc}")
    return CheckResult(
        name=check.name,
        component=outcome.component or check.component,
        verdict=outcome.verdict,
        duration=round(clock() - began, 4),
        detail=outcome.detail,
        hint=outcome.hint,
    )


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(r.verdict == "fail" for r in results) else 0


def blamed(results: Sequence[CheckResult]) -> list[str]:
    """The components of the failed checks, each once, in order."""
    return list(dict.fromkeys(r.component for r in results if r.verdict == "fail"))
