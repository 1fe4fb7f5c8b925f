"""Compose's value formats, each parsed into its long form: durations ``1m30s``, byte sizes ``512m``, ports
``127.0.0.1:8080:80/tcp``, volumes ``./src:/dst:ro``, healthcheck test forms, restart words, ``environment`` as
a list or a mapping, and paths relative to a folder.

Pure functions of the value: a value that cannot be parsed raises ValueError with a sentence saying what is
accepted (``normalize`` turns it into a located Problem). Never reads a file, never knows which key it parses.
"""

from __future__ import annotations

import os.path
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESTART_WORDS = ("no", "always", "on-failure", "unless-stopped")
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = re.compile(r"([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value: Any) -> float:
    """``1m30s`` -> 90.0; numbers are seconds. Raises ValueError with a sentence saying what is accepted."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    text = str(value).strip()
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r} is not a duration (write it like 10s, 1m30s, 1.5s, 100ms or 1h)")
    return total


def parse_bytes(value: Any) -> int:
    """``512m`` -> 536870912; ints are bytes. Units b, k, m, g, t (with optional b / ib), powers of 1024."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a byte size")
    if isinstance(value, int):
        return value
    match = _BYTES.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a byte size (write it like 512m, 1g, 100kb or 1024)")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


def parse_restart(value: Any) -> tuple[str, int | None]:
    """``on-failure:3`` -> ("on-failure", 3). Unknown words raise ValueError listing the known ones."""
    text = str(value)
    word, _, count = text.partition(":")
    if word in RESTART_WORDS and (not count or word == "on-failure"):
        if not count:
            return word, None
        if count.isdigit() and len(count) <= 18:
            return word, int(count)
    known = ", ".join([*RESTART_WORDS, "on-failure:N"])
    raise ValueError(f"restart {text!r} is not one of {known}")


def _port_number(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 5:
        raise ValueError(f"{text!r} is not a port number")
    number = int(text)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    return number


def _port_range(text: str) -> list[int]:
    low, sep, high = text.partition("-")
    if not sep:
        return [_port_number(text)]
    first, last = _port_number(low), _port_number(high)
    if last < first:
        raise ValueError(f"port range {text!r} ends before it starts")
    return list(range(first, last + 1))


def parse_port(value: Any) -> list[dict[str, Any]]:
    """One ``ports`` entry (int, short string or long mapping) -> long-syntax entries (ranges expanded)."""
    if isinstance(value, dict):
        entry = dict(value)
        if "target" not in entry:
            raise ValueError("a long-syntax port needs 'target'")
        entry["target"] = _port_number(str(entry["target"]))
        published = entry.get("published")
        if published is not None and published != "":
            entry["published"] = _port_range(str(published))[0]
        entry.setdefault("protocol", "tcp")
        return [entry]
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a port")
    text = str(value).strip()
    body, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    host_ip = ""
    if body.startswith("["):
        host_ip, _, body = body[1:].partition("]")
        body = body.removeprefix(":")
    parts = body.split(":")
    if len(parts) > 3 and not host_ip:
        host_ip, parts = ":".join(parts[:-2]), parts[-2:]
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    elif len(parts) == 1:
        published, target = "", parts[0]
    else:
        raise ValueError(f"{text!r} is not a port (write it like 8080:80, 127.0.0.1:8080:80/tcp or 80)")
    try:
        targets = _port_range(target)
        published_ports: list[int | None] = list(_port_range(published)) if published else [None] * len(targets)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid port: expected a number or 'HOST:CONTAINER' ({exc})") from None
    if len(published_ports) != len(targets):
        if len(targets) == 1:
            published_ports = published_ports[:1]
        else:
            raise ValueError(f"{text!r}: the published and target ranges differ in length")
    entries = []
    for published_port, target_port in zip(published_ports, targets, strict=True):
        item: dict[str, Any] = {"target": target_port}
        if published_port is not None:
            item["published"] = published_port
        if host_ip:
            item["host_ip"] = host_ip
        item["protocol"] = protocol
        entries.append(item)
    return entries


def parse_volume(value: Any, base_dir: Path) -> dict[str, Any]:
    """One ``volumes`` entry -> long syntax; relative bind sources are resolved against ``base_dir``."""
    if isinstance(value, dict):
        entry = dict(value)
        if "target" not in entry:
            raise ValueError("a long-syntax volume needs 'target'")
        entry.setdefault("type", "volume")
    else:
        text = str(value)
        parts = text.split(":")
        if len(parts) == 1:
            return {"type": "volume", "target": parts[0]}
        if len(parts) > 3:
            raise ValueError(f"{text!r} is not a volume (write it like ./data:/data:ro or name:/data)")
        source, target = parts[0], parts[1]
        modes = parts[2].split(",") if len(parts) == 3 else []
        is_path = source.startswith(("/", ".", "~"))
        entry = {"type": "bind" if is_path else "volume", "source": source, "target": target}
        if "ro" in modes:
            entry["read_only"] = True
        if "nocopy" in modes and not is_path:
            entry["volume"] = {"nocopy": True}
        if is_path:  # as Compose expands the short syntax: a missing host folder is created
            selinux = [m for m in modes if m in ("z", "Z")]
            entry["bind"] = {**({"selinux": selinux[0]} if selinux else {}), "create_host_path": True}
    if entry.get("type") == "bind" and isinstance(entry.get("source"), str):
        entry["source"] = str(resolve_path(entry["source"], base_dir))
    if isinstance(entry.get("target"), str) and entry["target"].startswith("/"):
        entry["target"] = posixpath.normpath(entry["target"])  # as Compose cleans it: no trailing slash
    return entry


def resolve_path(text: str, base_dir: Path) -> Path:
    """``~`` expanded; relative paths joined to ``base_dir`` and normalised."""
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return Path(_normpath(path))


def _normpath(path: Path) -> str:
    return os.path.normpath(path)


def healthcheck_test(value: Any) -> list[str] | None:
    """Healthcheck ``test`` -> ``["CMD", ...]`` / ``["CMD-SHELL", cmd]``; ``["NONE"]`` -> None."""
    if isinstance(value, str):
        return ["CMD-SHELL", value]
    if not isinstance(value, list) or not value:
        raise ValueError("healthcheck test must be a string or a list starting with CMD, CMD-SHELL or NONE")
    items = [str(v) for v in value]
    if items[0] == "NONE":
        return None
    if items[0] == "CMD" and len(items) > 1:
        return items
    if items[0] == "CMD-SHELL" and len(items) > 1:
        return ["CMD-SHELL", " ".join(items[1:])]
    raise ValueError(f"healthcheck test {value!r} must start with CMD, CMD-SHELL or NONE, then a command")


def scalar_text(value: Any) -> str:
    """How a YAML scalar reads as an environment value (``true``, ``3``, ``1.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def environment_mapping(value: Any, variables: Mapping[str, str]) -> dict[str, str]:
    """``environment`` as list or map -> mapping; a bare ``KEY`` takes its value from ``variables``."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for item in value:
            key, sep, val = str(item).partition("=")
            pairs.append((key, val if sep else None))
    elif value is not None:
        raise ValueError("environment must be a mapping or a list of KEY=VALUE")
    result: dict[str, str] = {}
    for key, val in pairs:
        if val is None:
            if key in variables:
                result[key] = variables[key]
        else:
            result[key] = scalar_text(val)
    return result
