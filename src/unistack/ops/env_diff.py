"""``env diff A B``: two environments' resolved configurations compared service by service, key by key.

Owns the canonical view (the project name, then each selected service's resolved Compose mapping, long syntax,
flattened to key paths: mappings key by key, lists as one value; top-level networks, volumes and x-unistack),
the comparison (an instance's own state folder counts as the same in both: ``${UNISTACK_STATE_DIR}``), and
where each differing value came from: the file and line whose value won, and each variable used there with its
source (env file and line, your shell, the template's default, unistack). Secrets never show: a value under a
secret-looking key (``config.rendering``'s rule) and a URL's password are ``********``; nothing else is
touched. Never prints.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config.rendering import MASK, is_secret_key
from unistack.config.sources import Loaded
from unistack.config.yamlfile import KeyPath, dotted
from unistack.ops.env import shown

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@/\s<][^@/\s]*)(@)")
_STATE = "${UNISTACK_STATE_DIR}"


@dataclass(frozen=True)
class VariableNote:
    """A variable used where a value was written, and where its own value came from."""

    name: str
    text: str  # ``HTTP_PORT=8081 (environments/staging.env:7)``, secrets masked


@dataclass(frozen=True)
class Side:
    """One environment's value of a key: shown (redacted), with the file and line that won and the variables."""

    value: str | None  # None: the key is not there
    file: str | None = None
    line: int | None = None
    variables: tuple[VariableNote, ...] = ()

    @property
    def origin(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line is not None else (self.file or "")


@dataclass(frozen=True)
class Difference:
    key: str  # ``services.proxy.environment.HTTP_PORT``
    service: str | None
    left: Side
    right: Side
    secret: bool = False  # the values differ, but both show as masked


@dataclass
class EnvDiff:
    left: str
    right: str
    differences: list[Difference] = field(default_factory=list)
    only_left: list[tuple[str, Side]] = field(default_factory=list)  # services in one environment only
    only_right: list[tuple[str, Side]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # per environment: required variables not set

    @property
    def equal(self) -> bool:
        return not (self.differences or self.only_left or self.only_right)

    def to_builtins(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {
                "value": s.value,
                "file": s.file,
                "line": s.line,
                "variables": [{"name": v.name, "source": v.text} for v in s.variables],
            }

        return {
            "left": self.left,
            "right": self.right,
            "equal": self.equal,
            "notes": self.notes,
            "only_in": {
                self.left: [{"service": n, **side(s)} for n, s in self.only_left],
                self.right: [{"service": n, **side(s)} for n, s in self.only_right],
            },
            "differences": [
                {"key": d.key, "service": d.service, "secret": d.secret, "left": side(d.left), "right": side(d.right)}
                for d in self.differences
            ],
        }


def canonical(loaded: Loaded) -> dict[KeyPath, Any]:
    """The configuration as key paths to values, comparable across environments."""
    project = loaded.checked()
    state_dir = str(project.state_dir)
    spec = project.spec
    flat: dict[KeyPath, Any] = {("name",): project.name}
    for name in project.services:
        _flatten(spec.get("services", {}).get(name, {}), ("services", name), flat)
    for section in ("networks", "volumes", "secrets", "configs", "x-unistack"):
        if spec.get(section):
            _flatten(spec[section], (section,), flat)
    return {k: _instance_free(v, state_dir) for k, v in flat.items()}


def _flatten(value: Any, path: KeyPath, out: dict[KeyPath, Any]) -> None:
    whole = len(path) == 4 and path[0] == "services" and path[2] == "depends_on"  # one dependency, one value
    if isinstance(value, dict) and value and not whole:
        for key, item in value.items():
            _flatten(item, (*path, str(key)), out)
    else:
        out[path] = value


def _instance_free(value: Any, state_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace(state_dir, _STATE)
    if isinstance(value, list):
        return [_instance_free(v, state_dir) for v in value]
    if isinstance(value, dict):
        return {k: _instance_free(v, state_dir) for k, v in value.items()}
    return value


def redact(value: Any, key: KeyPath) -> Any:
    """``value`` with secrets masked: all of it under a secret-looking key, else only URL passwords."""
    last = next((k for k in reversed(key) if isinstance(k, str)), "")
    if isinstance(value, str):
        if value and is_secret_key(last) and not value.startswith("<"):
            return MASK
        return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), value)
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, dict):
        return {k: redact(v, (*key, str(k))) for k, v in value.items()}
    return value


def display(value: Any, key: KeyPath) -> str:
    """One line for a value: ports as ``127.0.0.1:8080->8080/tcp``, volumes as ``source:target[:ro]``."""
    last = key[-1] if key else ""
    if isinstance(value, list) and last == "ports" and all(isinstance(p, dict) for p in value):
        return ", ".join(
            f"{p.get('host_ip') or '0.0.0.0'}:{p.get('published')}->{p.get('target')}/{p.get('protocol', 'tcp')}"
            for p in value
        )
    if isinstance(value, list) and last == "volumes" and all(isinstance(v, dict) for v in value):
        return ", ".join(
            f"{v.get('source', '')}:{v.get('target', '')}{':ro' if v.get('read_only') else ''}" for v in value
        )
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, separators=(", ", ": "))


def _side(loaded: Loaded, key: KeyPath, value: Any, present: bool) -> Side:
    if not present:
        return Side(None)
    file, line = loaded.origin(key)
    base = loaded.project_dir
    notes: dict[str, VariableNote] = {}
    uses = loaded.uses_at(key, file) if file is not None else []
    if key == ("name",) and "COMPOSE_PROJECT_NAME" in loaded.variables:
        notes["COMPOSE_PROJECT_NAME"] = _note(loaded, "COMPOSE_PROJECT_NAME", base)
        file, line = None, None
    for use in uses:
        if use.variable not in notes:
            notes[use.variable] = _note(loaded, use.variable, base, use.argument if use.has_default else None)
    return Side(display(redact(value, key), key), _relative(file, base), line, tuple(notes.values()))


def _relative(file: Path | None, base: Path) -> str | None:
    if file is None:
        return None
    return str(file.relative_to(base)) if file.is_relative_to(base) else str(file)


def _defined(loaded: Loaded, key: KeyPath) -> Side:
    """Where a service only one environment has is defined (or why it is selected: its profiles)."""
    file, line = loaded.origin(key)
    project = loaded.checked()
    profiles = project.services[str(key[1])].profiles if len(key) > 1 else ()
    value = f"profiles: {', '.join(profiles)}" if profiles else "defined"
    return Side(value, _relative(file, loaded.project_dir), line)


def _note(loaded: Loaded, name: str, base: Path, default: str | None = None) -> VariableNote:
    missing = {p.variable for p in loaded.missing}
    if name in missing:
        return VariableNote(name, f"{name}: not set (required)")
    source = loaded.source(name)
    if name not in loaded.variables:
        if source is not None and source.origin == "default":
            return VariableNote(name, f"{name} not set: {source.describe(base)}" + _default_text(name, default))
        return VariableNote(name, f"{name}: not set (empty)")
    if source is not None and source.origin == "unistack":
        return VariableNote(name, f"{name} (unistack: this instance's own)")
    where = source.describe(base) if source is not None else "?"
    return VariableNote(name, f"{shown(name, loaded.variables[name])} ({where})")


def _default_text(name: str, default: str | None) -> str:
    if default is None:
        return ""
    return f" ({MASK if default and is_secret_key(name) else default or '(empty)'})"


def diff(left_name: str, left: Loaded, right_name: str, right: Loaded) -> EnvDiff:
    """Compare two loaded environments (each loaded leniently: a missing required variable is a note)."""
    result = EnvDiff(left_name, right_name)
    for name, loaded in ((left_name, left), (right_name, right)):
        if loaded.missing:
            result.notes[name] = [f"{p.variable}: not set (required)" for p in loaded.missing if p.variable]
    a, b = canonical(left), canonical(right)
    services_a, services_b = left.checked().services, right.checked().services
    for name in services_a:
        if name not in services_b:
            result.only_left.append((name, _defined(left, ("services", name))))
    for name in services_b:
        if name not in services_a:
            result.only_right.append((name, _defined(right, ("services", name))))
    keys = list(dict.fromkeys([*a, *b]))
    for key in keys:
        service = str(key[1]) if key[0] == "services" and len(key) > 1 else None
        if service is not None and (service not in services_a or service not in services_b):
            continue
        if key in a and key in b and a[key] == b[key]:
            continue
        left_side = _side(left, key, a.get(key), key in a)
        right_side = _side(right, key, b.get(key), key in b)
        secret = left_side.value == right_side.value
        result.differences.append(Difference(dotted(key), service, left_side, right_side, secret))
    return result
