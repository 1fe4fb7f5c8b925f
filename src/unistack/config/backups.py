"""``x-unistack.backup``: what ``unistack backup`` saves of a service and ``unistack restore`` puts back.

Owns reading the key into ``BackupPart``s, each problem reported with its place (file, line, key) and the fix.
A service lists one part or several::

    x-unistack:
      backup:
        - postgres: {}                 # or {database: app, user: app}; defaults: POSTGRES_DB, POSTGRES_USER
        - volume: uploads              # a named volume this service mounts
        - {dump: [...], restore: [...]}  # anything else: dump writes to stdout, restore reads stdin

A single mapping (``backup: {volume: uploads}``) is one part; ``- postgres`` alone is ``postgres: {}``. Never
reads data or runs anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from unistack.config.manifests import command
from unistack.config.model import BackupPart
from unistack.config.yamlfile import KeyPath

SHAPE = "write backup: [{postgres: {}}], [{volume: NAME}] or [{dump: [...], restore: [...]}]."
POSTGRES_KEYS = ("database", "user")
PART_KEYS = ("postgres", "volume", "dump", "restore")


def read_backup(
    where: KeyPath,
    spec: Mapping[str, Any],
    declared_volumes: Collection[str],
    problem: Callable[[KeyPath, str, str | None], None],
) -> tuple[BackupPart, ...]:
    extension = spec.get("x-unistack")
    if not isinstance(extension, Mapping) or extension.get("backup") is None:
        return ()
    key: KeyPath = (*where, "x-unistack", "backup")
    raw = extension["backup"]
    entries = raw if isinstance(raw, list) else [raw]
    if not entries:
        problem(key, "x-unistack.backup is an empty list.", SHAPE)
    name = str(where[-1])
    mounted = _mounted_volumes(spec)
    parts: list[BackupPart] = []
    for index, entry in enumerate(entries):
        place: KeyPath = (*key, index) if isinstance(raw, list) else key
        part = _part(place, name, entry, declared_volumes, mounted, problem)
        if part is None:
            continue
        if part in parts:
            problem(place, f"service {name!r} lists the same backup part twice.", "remove one of them.")
            continue
        parts.append(part)
    return tuple(parts)


def _part(
    key: KeyPath,
    service: str,
    entry: Any,
    declared: Collection[str],
    mounted: Collection[str],
    problem: Callable[[KeyPath, str, str | None], None],
) -> BackupPart | None:
    if entry == "postgres":
        entry = {"postgres": {}}
    if not isinstance(entry, Mapping):
        problem(key, f"a backup part must be a mapping, not {type(entry).__name__}.", SHAPE)
        return None
    unknown = sorted(str(k) for k in entry if k not in PART_KEYS)
    for name in unknown:
        problem((*key, name), f"unknown backup key {name!r}.", "use postgres, volume, or dump and restore.")
    kinds = [k for k in ("postgres", "volume") if k in entry] + (
        ["command"] if "dump" in entry or "restore" in entry else []
    )
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none"
        problem(key, f"a backup part is exactly one of postgres, volume, or dump/restore (found {found}).", SHAPE)
        return None
    if kinds[0] == "postgres":
        options = entry["postgres"]
        if options is None or options is True:
            options = {}
        if not isinstance(options, Mapping):
            problem(
                (*key, "postgres"), "postgres takes a mapping of options.", "write postgres: {} or {database: app}."
            )
            return None
        for name in sorted(str(k) for k in options if k not in POSTGRES_KEYS):
            problem((*key, "postgres", name), f"unknown postgres option {name!r}.", "use database and user.")
        values: dict[str, str | None] = {}
        for name in POSTGRES_KEYS:
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                problem((*key, "postgres", name), f"postgres {name} must be a name.", None)
                value = None
            values[name] = value
        return BackupPart(kind="postgres", database=values["database"], user=values["user"])
    if kinds[0] == "volume":
        volume = entry["volume"]
        if not isinstance(volume, str) or not volume:
            problem((*key, "volume"), "volume must name a volume of the top-level volumes.", SHAPE)
            return None
        if volume not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problem(
                (*key, "volume"),
                f"service {service!r} backs up volume {volume!r}, which the top-level volumes do not declare "
                f"(declared: {known}).",
                f"declare it under volumes: ({volume}: {{}}) or name a declared one.",
            )
            return None
        if volume not in mounted:
            problem(
                (*key, "volume"),
                f"service {service!r} backs up volume {volume!r} but does not mount it.",
                f"add - {volume}:/path to its volumes, or declare the backup on the service that mounts it.",
            )
            return None
        return BackupPart(kind="volume", volume=volume)
    dump, restore = entry.get("dump"), entry.get("restore")
    argv: dict[str, tuple[str, ...]] = {}
    for name, value in (("dump", dump), ("restore", restore)):
        argv_found = command(value) if value is not None else None
        if argv_found is None:
            what = "is missing" if value is None else "must be a list or a string"
            problem(
                (*key, name),
                f"service {service!r}: the backup's {name} command {what}.",
                "give both: dump writes the data to stdout, restore reads it from stdin.",
            )
            return None
        argv[name] = argv_found
    return BackupPart(kind="command", dump=argv["dump"], restore=argv["restore"])


def _mounted_volumes(spec: Mapping[str, Any]) -> set[str]:
    mounted = set()
    for mount in spec.get("volumes") or ():
        if isinstance(mount, Mapping) and mount.get("type", "volume") == "volume" and mount.get("source"):
            mounted.add(str(mount["source"]))
    return mounted
