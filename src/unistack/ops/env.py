"""Environments (``unistack env``): which exist, what each resolves to, and what each lacks.

An environment is ``environments/<name>.env`` and/or ``compose.<name>.yaml`` beside the main compose file
(``local``, the default, exists even without either). Owns finding them (``environments``), loading one with
where its values came from (``load_environment``: ``config.examine``, lenient about required variables that are
not set), what ``env list`` shows of it (``describe``: project name, entry addresses, files, running) and what
``env check`` finds (``check``: one finding per variable that is not set, naming every use; values of the wrong
shape named with the variable that made them wrong). ``env_diff`` compares two; ``scaffold`` makes a new one.
Never prints and never exits: ``commands/env.py`` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from unistack import config
from unistack.config import discover
from unistack.config.interpolation import VariableUse
from unistack.config.rendering import MASK, is_secret_key
from unistack.config.sources import Loaded
from unistack.config.yamlfile import dotted
from unistack.control import state
from unistack.errors import Problem, UsageError


def shown(name: str, value: str) -> str:
    """``NAME=value``, the value masked when the name looks secret (``config.rendering``'s rule)."""
    return f"{name}={MASK if value and is_secret_key(name) else value}"


@dataclass(frozen=True)
class Environment:
    """One environment and the files that define it (paths absolute; either may be None)."""

    name: str
    env_file: Path | None
    overlay: Path | None

    def files(self, base: Path) -> list[str]:
        return [str(p.relative_to(base)) for p in (self.env_file, self.overlay) if p is not None]


def main_file(files: Sequence[str] | None, cwd: Path | None) -> Path:
    """The main compose file: the first ``-f``, else the nearest compose file from ``cwd`` upward."""
    here = (cwd or Path.cwd()).resolve()
    if files:
        first = Path(files[0])
        return first if first.is_absolute() else here / first
    return discover.find_compose_file(here)


def environments(main: Path) -> list[Environment]:
    """Every environment beside ``main``, by name (``local`` first)."""
    folder = main.parent
    stem = main.name.rsplit(".", 1)[0]
    names = {p.stem for p in (folder / "environments").glob("*.env") if p.is_file()}
    for path in folder.glob(f"{stem}.*.y*ml"):
        middle = path.name[len(stem) + 1 :].rsplit(".", 1)
        if len(middle) == 2 and middle[1] in ("yaml", "yml") and middle[0] != "override":
            names.add(middle[0])
    names.add(discover.DEFAULT_ENV)
    found = []
    for name in sorted(names, key=lambda n: (n != discover.DEFAULT_ENV, n)):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            continue
        env_file = folder / "environments" / f"{name}.env"
        overlays = [folder / f"{stem}.{name}.{suffix}" for suffix in ("yaml", "yml")]
        found.append(
            Environment(
                name, env_file if env_file.is_file() else None, next((p for p in overlays if p.is_file()), None)
            )
        )
    return found


def find_environment(main: Path, name: str) -> Environment:
    """The environment called ``name``; a UsageError listing the known ones when there is none."""
    known = environments(main)
    for environment in known:
        if environment.name == name:
            return environment
    raise UsageError(
        f"no environment {name!r} beside {main}: neither environments/{name}.env nor "
        f"{main.name.rsplit('.', 1)[0]}.{name}.yaml exists; known: {', '.join(e.name for e in known)}"
    )


def load_environment(
    main: Path,
    name: str,
    *,
    files: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
) -> Loaded:
    """The environment resolved, with where its values came from; never raises ConfigError (see ``problems``)."""
    return config.examine(
        list(files) if files else [main], env=env, env_name=name, profiles=profiles, cwd=main.parent, lenient=True
    )


# --- env list --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentInfo:
    """What ``env list`` shows of one environment."""

    name: str
    project: str | None
    addresses: list[str]
    files: list[str]
    running: bool
    missing: list[str] = field(default_factory=list)  # required variables that are not set
    problem: str | None = None  # why it does not load


def entry_addresses(loaded: Loaded) -> list[str]:
    """``http://127.0.0.1:8081`` for every published TCP port of the resolved configuration."""
    if loaded.project is None:
        return []
    addresses = []
    for service in loaded.project.services.values():
        for port in service.ports:
            if port.published is not None and port.protocol == "tcp":
                host = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
                addresses.append(f"http://{'[' + host + ']' if ':' in host else host}:{port.published}")
    return list(dict.fromkeys(addresses))


def describe(environment: Environment, loaded: Loaded) -> EnvironmentInfo:
    project = loaded.project.name if loaded.project is not None else (loaded.name or None)
    state_dir = loaded.project.state_dir if loaded.project is not None else loaded.state_dir
    problems = [p for p in loaded.problems if p.variable is None]
    return EnvironmentInfo(
        name=environment.name,
        project=project,
        addresses=entry_addresses(loaded),
        files=environment.files(loaded.project_dir),
        running=state_dir is not None and state.daemon_alive(state_dir),
        missing=[p.variable for p in loaded.missing if p.variable],
        problem=str(problems[0]) if problems else None,
    )


# --- env check ---------------------------------------------------------------------------------------------

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One line of ``env check``: a variable that is not set or has the wrong shape, or another problem."""

    severity: Severity
    text: str
    variable: str | None = None


def check(loaded: Loaded) -> list[Finding]:
    """Everything the environment needs and lacks, all at once: one finding per variable."""
    findings = [Finding("error", str(p), p.variable) for p in loaded.missing]
    missing = {p.variable for p in loaded.missing}
    for problem in loaded.problems:
        if problem.variable is not None:
            continue
        findings.append(_shape(loaded, problem))
    unset: dict[str, list[VariableUse]] = {}
    for use in loaded.uses:
        if use.operator is None and use.variable not in loaded.variables and use.variable not in missing:
            unset.setdefault(use.variable, []).append(use)
    for name, uses in unset.items():
        places = ", ".join(dict.fromkeys(u.where(loaded.project_dir) for u in uses))
        findings.append(
            Finding(
                "warning",
                f"{name} is not set, so it is empty where it is used ({places}): set it, or write ${{{name}:-}} "
                "where empty is meant",
                name,
            )
        )
    return findings


def _shape(loaded: Loaded, problem: Problem) -> Finding:
    """A problem of the loaded configuration, blamed on the variables used where it is (a port ``abc``)."""
    if problem.key is None:
        return Finding("error", str(problem))
    uses = [u for u in loaded.uses if u.file == problem.file and _below(dotted(u.key), problem.key)]
    named = [u for u in dict.fromkeys(uses) if u.variable in loaded.variables]
    if not named:
        return Finding("error", str(problem))
    variables = []
    for use in {u.variable: u for u in named}.values():
        source = loaded.source(use.variable)
        where = f" ({source.describe(loaded.project_dir)})" if source is not None else ""
        variables.append(shown(use.variable, loaded.variables[use.variable]) + where)
    place = f"{named[0].where(loaded.project_dir)}"
    fix = f" Fix: {problem.fix}" if problem.fix else ""
    return Finding(
        "error",
        f"{' and '.join(variables)} makes {place} wrong: {problem.message}{fix}",
        named[0].variable,
    )


def _below(key: str, parent: str) -> bool:
    return key == parent or key.startswith((parent + ".", parent + "["))
