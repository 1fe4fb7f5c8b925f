"""A load remembered: what ``ps``, ``config`` and ``logs --tail N`` need of a project (its state folder, name,
services, and ``config``'s output), kept per user and found again only when every input of the load is as it was.

The key (``material``): the global options that reach the load (``-f``, ``-p``, ``--env``, ``--env-file``,
``--profile``), the current folder, the whole environment (the project keeps every variable, for redaction: any
variable can change the output), the format of the entries and the Python version. An entry holds the key itself
(compared whole: a file name's checksum colliding is a miss), the code's fingerprint (``unistack.fingerprint``:
another version or an edited file is a miss), and each input ``config.inputs`` recorded: every file read (size,
CRC-32 and Adler-32 of its bytes: an edit within the same mtime tick is seen), every path tested (a file added
later, ``compose.override.yaml`` say, is seen) and the folder resolved. Any doubt is a miss; a miss loads as
before and stores what it found. ``UNISTACK_DEBUG_CACHE=1`` says on stderr why a lookup missed.

Entries are ``marshal``'s (the key names the Python version; ``json`` would import ``re``), in
``$XDG_CACHE_HOME/unistack/loads`` (else ``~/.cache/unistack/loads``), the folder 0700 and each file 0600
(``config --no-redact`` output holds secrets, as ``project.json`` does), at most ``KEEP`` of them. Standard
library only: the fast path (``unistack.fastpath``) imports it. Never loads, prints to stdout or exits.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import zlib

from unistack.config import inputs
from unistack.fingerprint import code_fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

FORMAT = 1
KEEP = 64


def material(options: Mapping[str, object], cwd: str, environ: Mapping[str, str]) -> str:
    """The key: what the load is given, besides the files it reads."""
    return repr([FORMAT, sys.version, options, cwd, sorted(environ.items())])


def folder(environ: Mapping[str, str]) -> str | None:
    base = environ.get("XDG_CACHE_HOME") or (os.path.join(environ["HOME"], ".cache") if environ.get("HOME") else "")
    return os.path.join(base, "unistack", "loads") if os.path.isabs(base) else None


def _path(where: str, key: str) -> str:
    data = key.encode("utf-8", "surrogateescape")
    return os.path.join(where, f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}.marshal")


def lookup(key: str, environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The entry stored for ``key``, when the code and every input are as they were; else None."""
    where = folder(environ)
    if where is None:
        return None
    debug = bool(environ.get("UNISTACK_DEBUG_CACHE"))
    try:
        with open(_path(where, key), "rb") as file:
            entry = marshal.loads(file.read())
    except (OSError, ValueError, EOFError, TypeError) as exc:
        return _miss(debug, f"no entry readable for this command ({exc})")
    if not isinstance(entry, dict) or entry.get("key") != key:
        return _miss(debug, "the entry is of another command (the same file name) or not an entry")
    if entry.get("code") != code_fingerprint():
        return _miss(debug, "the unistack code changed (another version, or a file of it edited)")
    if not _well_formed(entry):
        return _miss(debug, "the entry is not of this format")
    changed = inputs.first_changed(entry["inputs"])
    if changed is not None:
        return _miss(debug, changed)
    return entry


def _well_formed(entry: dict[Any, Any]) -> bool:
    recorded, services, outputs = entry.get("inputs"), entry.get("services"), entry.get("outputs")
    return (
        isinstance(recorded, list)
        and all(isinstance(i, tuple) and len(i) == 3 for i in recorded)
        and isinstance(entry.get("state_dir"), str)
        and isinstance(entry.get("name"), str)
        and isinstance(services, list)
        and all(isinstance(s, str) for s in services)
        and isinstance(outputs, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in outputs.items())
    )


def _miss(debug: bool, why: str) -> dict[str, Any] | None:
    """A miss, said on stderr with ``UNISTACK_DEBUG_CACHE=1`` (the first difference found)."""
    if debug:
        sys.stderr.write(f"unistack: load cache miss: {why}\n")
    return None


class Pending:
    """A miss the CLI is answering the slow way: its load recorded, then stored if the command succeeds."""

    def __init__(self, key: str, environ: Mapping[str, str], found: dict[str, Any] | None = None) -> None:
        self.key, self.environ = key, environ
        self.entry: dict[str, Any] | None = None
        self.outputs: dict[str, str] = {}
        self.found = found  # the valid entry that lacked the output asked for: its others are kept

    def loaded(self, recorded: list[inputs.Input], state_dir: str, name: str, services: list[str]) -> None:
        self.entry = {"inputs": recorded, "state_dir": state_dir, "name": name, "services": services}

    def store(self) -> None:
        """Write the entry (atomically, private); a cache that cannot be written is only a miss next time."""
        where = folder(self.environ)
        if self.entry is None or where is None:
            return
        code, outputs = code_fingerprint(), self.outputs
        found = self.found
        if found is not None and found["code"] == code and found["inputs"] == self.entry["inputs"]:
            outputs = {**found["outputs"], **outputs}  # made from the same inputs by the same code
        entry = {"key": self.key, "code": code, **self.entry, "outputs": outputs}
        path = _path(where, self.key)
        temporary = f"{path}.{os.getpid()}"
        try:
            os.makedirs(where, mode=0o700, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "wb") as file:
                file.write(marshal.dumps(entry))
            os.replace(temporary, path)
            _prune(where)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _prune(where: str) -> None:
    """At most ``KEEP`` entries: the least recently written go."""
    with os.scandir(where) as listing:
        entries = [(e.stat().st_mtime_ns, e.path) for e in listing if e.name.endswith(".marshal")]
    for _, path in sorted(entries)[:-KEEP]:
        os.unlink(path)


pending: Pending | None = None
"""Set by the fast path on a miss it could have answered: the CLI's load and output are then remembered."""


def recording() -> bool:
    return pending is not None and pending.entry is None


def discard() -> None:
    """The load took more than its inputs into account (the ports an earlier ``up`` chose): nothing is stored."""
    global pending
    pending = None


def remember_output(name: str, text: str) -> None:
    """An output that is a function of the load alone (``config``'s, per format and redaction)."""
    if pending is not None and "\x1b" not in text:  # click strips escapes when not on a terminal: not cached
        pending.outputs[name] = text
