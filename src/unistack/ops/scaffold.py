"""``env new NAME [--from BASE]``: a new environment's files, made from another's.

Owns the plan (pure but for reading the base's files: ``plan``) and writing it (``write``, which never
overwrites). The new ``environments/NAME.env`` is the base's text, comments and order kept, with a project
name of its own (``COMPOSE_PROJECT_NAME=<project>-NAME``), an entry port of its own (the variable the published
ports use, set to a port no other environment uses and free on this machine) and secrets emptied and marked
required; ``compose.NAME.yaml`` is a copy of the base's overlay (or a commented stub when it has none).
Never prints.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unistack.config import discover
from unistack.config.interpolation import interpolate
from unistack.config.rendering import is_secret_key
from unistack.config.yamlfile import read_yaml_file
from unistack.errors import ConfigError, UsageError
from unistack.ops.env import Environment, environments, load_environment

_LINE = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>\s*[=:]\s*)(?P<value>.*)$")
REQUIRED = "# required: set in your shell or secret store"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_FIRST_PORT, _LAST_PORT = 1024, 65535


@dataclass
class Scaffold:
    """What ``env new`` writes: file -> text, and what it chose."""

    name: str
    base: str
    project_name: str
    files: dict[Path, str] = field(default_factory=dict)
    port_variable: str | None = None
    port: int | None = None
    required: list[str] = field(default_factory=list)  # secrets left empty: set them before `up`
    notes: list[str] = field(default_factory=list)


def port_is_free(port: int) -> bool:
    from unistack.runtimes.host import bind_problem

    return bind_problem("127.0.0.1", port) is None


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name == "override":
        raise UsageError(
            f"environment name {name!r} is not valid: use lowercase letters, digits, '-' and '_', starting with a "
            "letter or digit (as a Compose project name), and not 'override'"
        )


def plan(main: Path, name: str, base: Environment, port_free: Callable[[int], bool] = port_is_free) -> Scaffold:
    """The files of a new environment ``name`` made from ``base``; a UsageError when ``name`` is not valid or its
    files exist."""
    check_name(name)
    folder = main.parent
    stem = main.name.rsplit(".", 1)[0]
    env_path = folder / "environments" / f"{name}.env"
    overlay_path = folder / f"{stem}.{name}.yaml"
    taken = [p for p in (env_path, overlay_path, folder / f"{stem}.{name}.yml") if p.exists()]
    if taken:
        raise UsageError(
            f"environment {name!r} exists already: {', '.join(str(p.relative_to(folder)) for p in taken)}; "
            "choose another name or edit those files"
        )
    loaded = load_environment(main, base.name)
    project = f"{_project_base(main, loaded.variables)}-{name}"
    discover.check_project_name(project, f"the new environment {name!r}")
    result = Scaffold(name, base.name, project)

    # the entry port: the variable the published ports are written with, set to a port of its own
    variables = list(dict.fromkeys(u.variable for u in loaded.uses if len(u.key) > 3 and u.key[2] == "ports"))
    used = _ports_in_use(main)
    if variables:
        result.port_variable = variables[0]
        current = loaded.variables.get(variables[0], "")
        start = int(current) + 1 if current.isdigit() else 8080
        result.port = next_port(start, used, port_free)
    elif loaded.project is not None and any(s.ports for s in loaded.project.services.values()):
        result.notes.append(
            f"the published ports are written as numbers in {stem} files: change them in {overlay_path.name}"
        )

    text = base.env_file.read_text(encoding="utf-8") if base.env_file is not None else ""
    result.files[env_path] = _env_text(text, result)
    result.required = list(dict.fromkeys([*result.required, *(p.variable for p in loaded.missing if p.variable)]))
    if base.overlay is not None:
        overlay = base.overlay.read_text(encoding="utf-8")
        header = (
            f"# The {name!r} environment's overlay, merged over {main.name} by `--env {name}`: made by "
            f"`unistack env new {name} --from {base.name}` as a copy of {base.overlay.name}.\n"
        )
        result.files[overlay_path] = header + overlay
    else:
        result.files[overlay_path] = (
            f"# The {name!r} environment's overlay, merged over {main.name} by `--env {name}` (Compose's merge\n"
            f"# rules). Made by `unistack env new {name} --from {base.name}`; {base.name} has none, so it is empty.\n"
            "# For example:\n#\n# services:\n#   backend:\n#     environment:\n#       LOG_LEVEL: debug\n"
        )
    return result


def _project_base(main: Path, variables: dict[str, str]) -> str:
    """The project's own name: ``name:`` of the main file, else its folder's (not an environment's override)."""
    try:
        raw = read_yaml_file(main).data.get("name")
        if isinstance(raw, str) and raw:
            return interpolate(raw, variables)
    except ConfigError:
        pass
    return discover.normalize_project_name(main.parent.name) or "project"


def _ports_in_use(main: Path) -> set[int]:
    """Every port an environment of this project publishes or sets in its files."""
    used: set[int] = set()
    for environment in environments(main):
        loaded = load_environment(main, environment.name)
        if loaded.project is not None:
            used.update(
                p.published for s in loaded.project.services.values() for p in s.ports if p.published is not None
            )
        if environment.env_file is not None:
            for line in environment.env_file.read_text(encoding="utf-8").splitlines():
                match = _LINE.match(line)
                if match and "PORT" in match["key"].upper() and match["value"].strip().isdigit():
                    used.add(int(match["value"].strip()))
    return used


def next_port(start: int, used: set[int], port_free: Callable[[int], bool]) -> int:
    """The first port from ``start`` up that no environment uses and nothing listens on."""
    first = max(start, _FIRST_PORT)
    for port in itertools.chain(range(first, _LAST_PORT + 1), range(_FIRST_PORT, first)):
        if port not in used and port_free(port):
            return port
    raise UsageError("no free TCP port for the new environment's entry point")


def _env_text(text: str, s: Scaffold) -> str:
    """The base's env file with this environment's project name, port and empty secrets; comments kept."""
    lines = text.splitlines()
    out: list[str] = [
        f"# The {s.name!r} environment: made by `unistack env new {s.name} --from {s.base}` from its settings.",
    ]
    seen: set[str] = set()
    for index, line in enumerate(lines):
        match = _LINE.match(line)
        if match is None or line.lstrip().startswith("#"):
            out.append(line)
            continue
        key = match["key"]
        seen.add(key)
        if key == "COMPOSE_PROJECT_NAME":
            out.append(f"{match['lead']}{key}{match['sep']}{s.project_name}")
        elif key == s.port_variable:
            out.append(f"{match['lead']}{key}{match['sep']}{s.port}")
        elif is_secret_key(key) and match["value"].strip():
            if not (index and lines[index - 1].strip() == REQUIRED):
                out.append(REQUIRED)
            out.append(f"{match['lead']}{key}{match['sep'].rstrip()}")
            s.required.append(key)
        else:
            out.append(line)
    missing = []
    if "COMPOSE_PROJECT_NAME" not in seen:
        missing.append(
            "# its own project name: its own state folder, volumes and containers\n"
            + f"COMPOSE_PROJECT_NAME={s.project_name}"
        )
    if s.port_variable and s.port_variable not in seen:
        missing.append(f"# its own entry port\n{s.port_variable}={s.port}")
    if missing:
        at = 1
        while at < len(out) and out[at].startswith("#"):  # after the leading comment block
            at += 1
        out[at:at] = [*missing, ""] if at < len(out) and out[at].strip() else ["", *missing]
    return "\n".join(out).rstrip("\n") + "\n"


def write(s: Scaffold) -> None:
    """Write the files (never over existing ones: the plan checked, and ``x`` mode checks again)."""
    for path, text in s.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise UsageError(f"{path} exists already; not overwritten") from None
