"""The read-only verbs' fast path: the common forms of ``ps``, ``config`` and ``logs --tail N`` answered from a
remembered load (``config.loadcache``) without importing click, msgspec or the loader (~45 ms less each).

It reads the words by hand only where they are unambiguous: the global options ``-f/--file``, ``-p/
--project-name``, ``--env``, ``--env-file``, ``--profile``, ``--runtime`` each followed by its value as the next
word; then ``ps [--format table|json] [SERVICE...]``, ``config [--format yaml|json] [--no-redact]`` or ``logs
-n/--tail N [SERVICE...]``. Anything else (``--opt=value``, ``-h``, ``--target``, ``-f`` after ``logs``, an
unknown service, a repeated single option, a runtime click refuses), a miss, a ``ports.json``, no daemon answering
with this code, or any error: ``None``, and the CLI does it as before (storing its load for next time when the
words were read here). The output is the CLI's, byte for byte (``tests/integration/test_fastpath.py`` compares
them). Never prints an error, never exits: ``entry`` does.
"""

from __future__ import annotations

import os
import sys

from unistack.config import loadcache
from unistack.control import wire
from unistack.fingerprint import code_fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GLOBAL = {
    "-f": "files",
    "--file": "files",
    "-p": "project_name",
    "--project-name": "project_name",
    "--env": "env_name",
    "--env-file": "env_files",
    "--profile": "profiles",
    "--runtime": "runtime",
}
REPEATABLE = {"files", "env_files", "profiles"}
RUNTIMES = ("process", "docker", "auto")  # runtimes.RUNTIME_CHOICES (tests/unit/test_loadcache.py compares)
ANSWER_WITHIN = 1.0  # a slower daemon: the CLI's own way (it waits 5 s more and names a daemon that does not answer)
LOGS_WITHIN = 2.0  # control.client.LOGS_WITHIN (compared there too)


class Words:
    """The command as read here: the load's options, the runtime asked for, the verb and its options."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {
            "files": [],
            "project_name": None,
            "env_name": None,
            "env_files": [],
            "profiles": [],
        }
        self.runtime: str | None = None
        self.verb = ""
        self.fmt: str | None = None
        self.no_redact = False
        self.tail: int | None = None
        self.services: list[str] = []


def read(argv: list[str]) -> Words | None:
    """The words, when every one is of a form read here (else None)."""
    words = Words()
    i = 0
    while i < len(argv) and argv[i] in GLOBAL:
        name, value = GLOBAL[argv[i]], argv[i + 1] if i + 1 < len(argv) else None
        if value is None or value.startswith("-"):
            return None
        if name in REPEATABLE:
            words.options[name].append(value)
        elif name == "runtime":
            if words.runtime is not None:
                return None
            words.runtime = value
        elif words.options[name] is not None:
            return None
        else:
            words.options[name] = value
        i += 2
    if i >= len(argv) or argv[i] not in ("ps", "config", "logs"):
        return None
    words.verb, rest = argv[i], argv[i + 1 :]
    formats = {"ps": ("table", "json"), "config": ("yaml", "json"), "logs": ()}[words.verb]
    j = 0
    while j < len(rest):
        word, value = rest[j], rest[j + 1] if j + 1 < len(rest) else None
        if word == "--format" and formats and words.fmt is None and value in formats:
            words.fmt, j = value, j + 2
        elif word == "--no-redact" and words.verb == "config" and not words.no_redact:
            words.no_redact, j = True, j + 1
        elif word in ("-n", "--tail") and words.verb == "logs" and words.tail is None and value and value.isdigit():
            words.tail, j = int(value), j + 2
        elif not word.startswith("-") and words.verb != "config":
            words.services.append(word)
            j += 1
        else:
            return None
    if words.verb == "logs" and words.tail is None:
        return None  # every line, or following: read by the runtime, not the daemon
    return words


def main(argv: list[str], environ: dict[str, str] | None = None) -> str | None:
    """The command's output when answered here; None: the CLI answers (``loadcache.pending`` set on a miss)."""
    environ = dict(os.environ) if environ is None else environ
    words = read(argv)
    if words is None or not environ.get("HOME"):  # no HOME: paths with ~ would come from the password database
        return None
    if (words.runtime or environ.get("UNISTACK_RUNTIME") or "auto") not in RUNTIMES:
        return None  # click refuses it, whatever the verb
    try:
        cwd = os.getcwd()
    except OSError:  # the current folder was removed: the CLI says so
        return None
    key = loadcache.material(words.options, cwd, environ)
    entry = loadcache.lookup(key, environ)
    if entry is None:
        loadcache.pending = loadcache.Pending(key, environ)
        return None
    try:
        output = _answer(words, key, entry, environ)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if output is not None and environ.get("UNISTACK_DEBUG_CACHE"):
        sys.stderr.write("unistack: answered from the load cache\n")
    return output


def _answer(words: Words, key: str, entry: dict[str, Any], environ: dict[str, str]) -> str | None:
    state_dir: str = entry["state_dir"]
    if os.path.exists(os.path.join(state_dir, "ports.json")):
        return None  # ports an earlier `up` chose: the CLI loads again with them
    if any(s not in entry["services"] for s in words.services):
        return None  # the CLI names the unknown ones
    if words.verb == "config":
        name = f"config {words.fmt or 'yaml'}{' --no-redact' if words.no_redact else ''}"
        if name not in entry["outputs"]:
            loadcache.pending = loadcache.Pending(key, environ, found=entry)
            return None
        output: str = entry["outputs"][name]
        return output
    if words.verb == "ps":
        return _ps(state_dir, words)
    return _logs(state_dir, words, entry, environ)


def _call(state_dir: str, within: float, cmd: str, **args: Any) -> Any:
    """One request to the instance's daemon (``control.client.DaemonClient.call``); its result, or a ValueError."""
    import json

    path = os.path.join(state_dir, "run", "daemon.sock")
    if len(os.fsencode(path)) > 100:  # too long for a unix socket: the daemon's short private path
        from pathlib import Path

        from unistack.control.state import socket_path

        path = str(socket_path(Path(state_dir)))
    data = wire.exchange(path, {"cmd": cmd, **args}, within)
    reply = json.loads(data)
    if not reply.get("ok"):
        raise ValueError(reply.get("error"))
    return reply.get("result")


def _ps(state_dir: str, words: Words) -> str | None:
    info = _call(state_dir, ANSWER_WITHIN, "ping")
    if info.get("code") != code_fingerprint():
        return None  # older code: the CLI has it hand over
    rows = [
        row for row in _call(state_dir, ANSWER_WITHIN, "ps") if not words.services or row["service"] in words.services
    ]
    if words.fmt == "json":
        import json

        text = json.dumps(rows, indent=2)
    else:
        from unistack.printer import ps_table_of

        text = ps_table_of(rows)
    return None if "\x1b" in text else text + "\n"


def _logs(state_dir: str, words: Words, entry: dict[str, Any], environ: dict[str, str]) -> str | None:
    runtime = words.runtime or environ.get("UNISTACK_RUNTIME") or "auto"
    if runtime == "auto":
        import json

        with open(os.path.join(state_dir, "state.json"), "rb") as file:
            runtime = json.loads(file.read()).get("runtime")
        if runtime not in ("process", "docker"):
            return None
    if not _daemon_alive(state_dir):
        return None
    names = words.services or list(entry["services"])
    lines = _call(state_dir, LOGS_WITHIN, "logs", runtime=runtime, services=names, tail=words.tail)
    if lines is None:
        return None
    import io

    from unistack.printer import Printer, use_colour

    out = io.StringIO()
    printer = Printer(names, stream=out, colour=use_colour(sys.stdout))
    for service, text in lines:
        printer.log(service, text)
    return out.getvalue()


def _daemon_alive(state_dir: str) -> bool:
    """``control.state.daemon_alive``: some process holds ``daemon.lock``."""
    return wire.lock_held(os.path.join(state_dir, "daemon.lock"))
