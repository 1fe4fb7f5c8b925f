"""Following an instance on the terminal: ``up`` in the foreground, and the lines of ``logs``.

``foreground`` prints the services' output and unistack's events interleaved while it has the daemon start the
stack, until Ctrl+C (the first asks the daemon for a graceful stop, the second for a kill) or until every service
has ended (1 when one failed). It talks to the daemon through ``control.client`` and formats nothing itself (the
Printer does); it never parses arguments and never exits (``cli.py`` does both).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from unistack.config.model import Project
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.engine.events import Event
from unistack.engine.states import FAILED, SETTLED
from unistack.errors import UnistackError
from unistack.printer import Printer
from unistack.runtimes.base import Runtime
from unistack.runtimes.logfiles import LogLine
from unistack.runtimes.logfiles import follow as follow_files

CHECK_EVERY = 0.5  # seconds between looks at whether every service has ended


async def foreground(
    project: Project,
    selected: list[str],
    runtime: Runtime,
    printer: Printer,
    start: Callable[[], object],
    started: Callable[[], None],
) -> int:
    """Follow the selected services (all when none) from now on, run ``start`` (blocking: it has the daemon start
    them) in a thread, then ``started``, and go on until Ctrl+C or until all of them ended."""
    loop = asyncio.get_running_loop()
    names = selected or list(project.services)
    presses = 0
    tasks: list[asyncio.Task[Any]] = []

    def on_interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            printer.say("Gracefully stopping... (press Ctrl+C again to force)")
            tasks.append(loop.create_task(_call_quietly(project, "down")))
        else:
            printer.say("Forcing stop: killing every service now")
            tasks.append(loop.create_task(_call_quietly(project, "kill")))

    logs = loop.create_task(print_logs(runtime.logs(project, names, 0, True), printer))
    events = loop.create_task(_print_events(project, printer))
    await asyncio.sleep(0.05)  # followers take their starting offsets before anything is written
    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, on_interrupt)
    try:
        await asyncio.to_thread(start)
        started()
        code = await _until_all_ended(project, names)
    finally:
        with contextlib.suppress(Exception):
            for task in tasks:
                await task
        await asyncio.sleep(0.3)  # the last lines and events reach the screen
        logs.cancel()
        events.cancel()
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return code


async def print_logs(lines: AsyncIterator[LogLine], printer: Printer) -> None:
    async for line in lines:
        printer.log(line.service, line.text)


async def _call_quietly(project: Project, cmd: str) -> None:
    with contextlib.suppress(UnistackError):
        await asyncio.to_thread(daemon_client.DaemonClient(project.state_dir).call, cmd)


async def _until_all_ended(project: Project, names: list[str]) -> int:
    """Return when every service ended (1 if one failed) or the daemon went away (after a stop)."""
    client = daemon_client.DaemonClient(project.state_dir)
    while True:
        await asyncio.sleep(CHECK_EVERY)
        try:
            mine = await asyncio.to_thread(client.ps, names)
        except UnistackError:
            return 0
        if mine and all(r.state in SETTLED for r in mine):
            failed = [r for r in mine if r.state in FAILED or (r.exit_code or 0) != 0]
            with contextlib.suppress(UnistackError):
                await asyncio.to_thread(client.call, "down")
            return 1 if failed else 0


async def _print_events(project: Project, printer: Printer) -> None:
    async for line in follow_files([("unistack", state.events_log(project.state_dir))], 0, True):
        with contextlib.suppress(ValueError, KeyError):
            printer.event(Event.from_json(line.text))
