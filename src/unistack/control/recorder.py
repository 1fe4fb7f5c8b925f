"""What a daemon writes down about its instance: ``state.json`` after each change, every event on
``logs/events.jsonl``.

Owns when the state file is written (at once, first thing in the loop's next iteration for an event that a next
daemon must see before anything else happens, or a moment later for the rest, one write for many changes), what it
holds (``state_record``: each service's state, restarts, incarnation record, whether it is wanted, a restart or an
update in progress; the runtime, the environment and a ``down`` begun), a write that fails (a full disk: tried
again at the next change or housekeeping round), and the events log (one descriptor kept open, whole lines, the
events a full disk dropped counted). It never reads the state back (``adoption`` does), never answers requests and
never changes the engine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unistack.control import state
from unistack.engine.events import Event
from unistack.errors import StateError
from unistack.runtimes.logwriter import Appender, Dropped

if TYPE_CHECKING:
    from unistack.engine.supervisor import Engine

SAVE_DELAY = 0.2
SAVED_AT_ONCE = frozenset({"started", "stopping", "stopped", "exited", "killed", "update"})
"""Events saved before the daemon handles new input: an incarnation's pid, a stop that began (a restart or down to
finish), an update's switch."""
NOT_SAVED = frozenset({"check_failed", "waiting", "setup", "notify_failed"})
"""News that changes nothing a next daemon needs."""


def state_record(
    engine: Engine, runtime_name: str, environ: dict[str, str], down_begun: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``state.json`` holds: enough for a next daemon to re-adopt, finish or start again what this one runs."""
    services: dict[str, Any] = {}
    for name, st in engine.status.items():
        check = st.last_check
        services[name] = {
            "state": st.state,
            "restarts": st.restarts,
            "restarted_at": st.restarted_at,
            "recent_restarts": [[at, cause] for at, cause in st.recent_restarts],
            "exit_code": st.exit_code,
            "record": st.handle.record if st.handle else None,
            "desired": engine.is_wanted(name),
            "restarting": name in engine.restarting,
            "restart_cause": engine.restart_unrecorded.get(name),  # a restart not recorded yet: the next daemon does
            "switched_to": st.switched_to,  # a start-first update between its switch and the old one's stop
            "last_check": None if check is None else check.__dict__,
        }
    return {
        "up": True,
        "runtime": runtime_name,
        "environ": environ,
        "daemon_pid": os.getpid(),
        "services": services,
        "down": down_begun,
    }


class Recorder:
    """The state file and the events log of one instance. ``record`` says what to save (None: nothing, as when
    the instance is gone or the daemon is ending)."""

    def __init__(self, state_dir: Path, record: Callable[[], dict[str, Any] | None]) -> None:
        self.state_dir = state_dir
        self._record = record
        self._save_pending = False
        self._save_next_pending = False
        self.failed = False  # the last state file write failed (a full disk): housekeeping tries again
        self._events = state.events_log(state_dir)
        self._events_out: Appender | None = None  # opened once: a start of 100 services writes ~1000 events

    def event(self, event: Event) -> None:
        """An event happened: onto the events log, and the state saved as soon as it needs to be."""
        if event.kind in SAVED_AT_ONCE:
            # an incarnation's pid (and a stop that began: a restart or down to finish) reaches the state file before
            # the daemon handles new input
            self.save_next()
        elif event.kind not in NOT_SAVED:
            self.save_soon()
        self.append_event((event.to_json() + "\n").encode())

    def append_event(self, line: bytes) -> None:
        """One line onto logs/events.jsonl: one write on a descriptor kept open (O_APPEND, unbuffered, so a
        follower sees it at once and nothing is lost to a kill). A full disk drops events (whole lines, never a
        torn one), counted: the first event written after says how many."""
        if self._events_out is None:
            try:
                self._events.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError:
                return  # tried again at the next event
            self._events_out = Appender(fd, _dropped_events)
        self._events_out.write(line)

    def close_events(self) -> None:
        """Flush and close the events log (a later event opens it again)."""
        if self._events_out is not None:
            out, self._events_out = self._events_out, None
            out.finish()
            os.close(out.fd)

    def save_next(self) -> None:
        """Save first thing in the event loop's next iteration, before it handles any new input or timer.

        The services woken together (a layer of dependents) start in the same iteration, and share one write
        instead of one each (a write is a few milliseconds on a busy disk, and would delay the next start). A
        process started just before the daemon dies is found by ``strays`` and stopped by the next daemon.
        """
        if not self._save_next_pending:
            self._save_next_pending = True
            asyncio.get_running_loop().call_soon(self.save_now)

    def save_soon(self) -> None:
        if not self._save_pending:
            self._save_pending = True
            asyncio.get_running_loop().call_later(SAVE_DELAY, self.save_now)

    def save_now(self) -> None:
        """Write the state file. A write that fails (a full disk) keeps the previous file whole and is tried
        again at the next change or housekeeping round; the daemon goes on from what it holds in memory."""
        self._save_pending = self._save_next_pending = False
        data = self._record()
        if data is None:
            return
        try:
            state.write_state(self.state_dir, data)
        except StateError as exc:
            if not self.failed:
                sys.stderr.write(f"{exc}\n")
            self.failed = True
        else:
            self.failed = False


def _dropped_events(dropped: Dropped) -> bytes:
    """The event that stands for those a full disk refused, written before the next one that fits."""
    message = f"{dropped.describe('events')} (logs/events.jsonl could not be written)"
    data = {"dropped_events": dropped.lines, "dropped_bytes": dropped.size}
    return (Event("error", None, message, time.time(), data).to_json() + "\n").encode()
