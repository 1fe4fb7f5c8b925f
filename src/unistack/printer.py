"""The one place that formats output for people: log lines, events, the ``ps`` table, wait reports.

Log and event lines get a fixed-width service name column, coloured only when writing to a terminal (and
``NO_COLOR`` is not set), as ``docker compose`` and honcho do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

TYPE_CHECKING = False  # not typing's: the read-only verbs' fast path prints without importing ``typing``
if TYPE_CHECKING:
    from typing import Any, TextIO

    from unistack.engine.events import Event
    from unistack.engine.states import ServiceRow

COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
RED, BOLD, DIM = 31, 1, 2
PROBLEM_KINDS = {"fatal", "error", "unhealthy", "killed", "blocked", "notify_failed"}
SELF = "unistack"


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class Printer:
    def __init__(self, names: Sequence[str], stream: TextIO | None = None, colour: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream) if colour is None else colour
        self.width = max([len(SELF), *(len(n) for n in names)])
        self.colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}

    def _paint(self, code: int, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def log(self, service: str, text: str) -> None:
        name = self._paint(self.colours.get(service, 37), f"{service:<{self.width}} |")
        self.stream.write(f"{name} {text}\n")
        self.stream.flush()

    def event(self, event: Event) -> None:
        code = RED if event.kind in PROBLEM_KINDS else DIM
        name = self._paint(BOLD, f"{SELF:<{self.width}} |")
        for i, line in enumerate(event.message.splitlines() or [""]):
            self.stream.write(f"{name} {self._paint(code, line) if i == 0 else line}\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def ps_table(rows: Iterable[ServiceRow]) -> str:
    from unistack.engine.states import rows_to_builtins

    return ps_table_of(rows_to_builtins(list(rows)))


def ps_table_of(rows: Sequence[Mapping[str, Any]]) -> str:
    """The ``ps`` table of rows as plain data (``ps --format json``'s, the daemon's reply)."""
    containers = any(row["container"] for row in rows)
    header = ("SERVICE", "STATE", "HEALTH", "RESTARTS", "CONTAINER" if containers else "PID", "PORTS", "LAST CHECK")
    lines = [header]
    for row in rows:
        ports = ", ".join(
            f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['target']}/{p['protocol']}" for p in row["ports"]
        )
        check = row["last_check"]
        check_text = "-"
        if check:
            at = datetime.fromisoformat(check["at"].replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
            output = " ".join(check["output"].split())[:40]
            check_text = f"{at} {'ok' if check['ok'] else 'failed'} ({check['exit_code']}) {output}".rstrip()
        ident = row["pid"] or (row["container"] or "")[:12] or "-"  # docker ps's short id
        state = row["state"] + (f" ({row['exit_code']})" if row["state"] == "exited" else "")
        if row.get("update"):  # a start-first update in progress: its step
            state += f", updating: {row['update']}"
        lines.append((row["service"], state, row["health"], str(row["restarts"]), str(ident), ports or "-", check_text))
    return columns(lines)


def columns(lines: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned columns (two spaces apart), the first row being the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def wait_report(result: dict[str, Any]) -> str:
    parts = []
    if result["ready"]:
        parts.append("ready: " + ", ".join(result["ready"]))
    for title, key in (("failed", "failed"), ("not ready yet", "pending")):
        for name, why in result[key].items():
            parts.append(f"{name} {title}: {why}")
    return "\n".join(parts)
