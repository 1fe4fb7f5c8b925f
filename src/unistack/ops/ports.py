"""An instance's published host ports, settled before ``up`` starts anything.

Owns finding the variables that feed published host ports (named in a ``ports`` entry of the raw files, before
interpolation, and confirmed by loading once with stand-in values), telling pinned ports (a variable set in your
shell, or a literal number in the file) from preferred ones (an env file's value or the template's default),
finding who holds a taken port (another instance, from the other state folders, the processes' environment or the
containers' labels: ``holders``; else the process by pid and name), choosing a free port for an unpinned variable that
another holder has taken (the variable gets the new value, so everything that reads it agrees), and keeping
that choice in the instance's ``ports.json`` until ``down``. Never starts anything, never prints.

A literal host port is pinned in both runtimes: a host process listens on it itself, and a container's mapping
says what the file says (as ``docker compose`` would, we refuse rather than renumber it silently).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unistack.control import state
from unistack.errors import ConfigError, PortInUse, Problem
from unistack.ops import holders
from unistack.ops.holders import Holder, holder

if TYPE_CHECKING:
    from unistack.config.model import Port, Project

SEARCH = 100  # ports tried above the preferred one before asking the kernel for any free one
_REFERENCE = re.compile(r"\$(?:\{([_a-zA-Z][_a-zA-Z0-9]*)|([_a-zA-Z][_a-zA-Z0-9]*))")

Reload = Callable[[Mapping[str, str]], "Project"]


@dataclass(frozen=True)
class PortUse:
    """A published host port that a variable feeds: the ``index``-th port of ``service``."""

    variable: str
    service: str
    index: int
    host_ip: str
    protocol: str
    preferred: int  # the number it has without our choice (an env file's value, or the template's default)


@dataclass(frozen=True)
class Choice:
    """An unpinned variable that gets another port than it prefers, and why."""

    variable: str
    preferred: int
    chosen: int
    note: str  # "(8080 is used by instance `a`)"


@dataclass(frozen=True)
class Settled:
    project: Project
    choices: list[Choice]


def pinned(variable: str, os_env: Mapping[str, str]) -> bool:
    """Set by the user in the shell (or on the command line, ``HTTP_PORT=9000 unistack up``). An env file's value
    and a template default are preferences. (When the loader reports each variable's source, ask it instead.)"""
    return variable in os_env


# --------------------------------------------------------------------- which variables feed which ports


def referenced_variables(files: Iterable[Path]) -> list[str]:
    """The variables named in the ``ports`` entries of the raw files (before interpolation), in order."""
    from unistack.config.yamlfile import read_yaml_file, strip_markers

    found: dict[str, None] = {}
    for path in files:
        try:
            data = strip_markers(read_yaml_file(path).data)
        except ConfigError:
            continue  # the load itself reported it already
        services = data.get("services") if isinstance(data, dict) else None
        for spec in (services or {}).values() if isinstance(services, dict) else ():
            entries = spec.get("ports") if isinstance(spec, dict) else None
            for entry in entries if isinstance(entries, list) else ():
                texts = [entry] if isinstance(entry, str) else []
                if isinstance(entry, dict):
                    texts = [str(entry.get(key, "")) for key in ("published", "host_ip")]
                for text in texts:
                    for match in _REFERENCE.finditer(text.replace("$$", "")):
                        name = match.group(1) or match.group(2)
                        if not name.startswith("UNISTACK_"):
                            found[name] = None
    return list(found)


def port_uses(project: Project, reload: Reload) -> list[PortUse]:
    """The published host ports fed by a variable: found by loading once with a stand-in value for each variable
    named in a ``ports`` entry (1, 2, ...) and seeing which port numbers become it."""
    names = referenced_variables(project.files)
    if not names:
        return []
    stand_ins = {name: str(number) for number, name in enumerate(names, start=1)}
    trials: list[tuple[dict[str, str], Project]] = []
    try:
        trials.append((stand_ins, reload(stand_ins)))
    except ConfigError:  # a stand-in the file cannot take (a variable used elsewhere too): one by one
        for name, value in stand_ins.items():
            with contextlib.suppress(ConfigError):
                trials.append(({name: value}, reload({name: value})))
    uses: dict[tuple[str, int], PortUse] = {}
    for values, trial in trials:
        by_number = {int(v): k for k, v in values.items()}
        for service_name, service in project.services.items():
            other = trial.services.get(service_name)
            if other is None or len(other.ports) != len(service.ports):
                continue
            for index, (port, changed) in enumerate(zip(service.ports, other.ports, strict=True)):
                variable = by_number.get(changed.published or 0)
                if variable is not None and port.published is not None and port.published != changed.published:
                    use = PortUse(variable, service_name, index, port.host_ip, port.protocol, port.published)
                    uses[(service_name, index)] = use
    return list(uses.values())


# --------------------------------------------------------------------- settling


def settle(
    project: Project,
    selected: Sequence[str],
    reload: Reload,
    os_env: Mapping[str, str],
    *,
    probe: Callable[[str, int, str, Path], Holder | None] | None = None,
) -> Settled:
    """The project with every published host port of the selected services (and their dependencies) free for this
    instance: an unpinned variable whose port another holder has is given a free one (its saved choice first, then
    the preferred port, then the ones above it); a pinned port that is taken is a PortInUse naming the holder
    and the fix, before anything starts. ``probe`` says who holds a port (default: ``holder``)."""
    who = probe or holder
    me = project.state_dir
    saved = saved_choices(me)
    if saved:  # ``project`` has them applied already: the preferred numbers are those of a load without them
        project = reload({})
    uses = port_uses(project, reload) if any(s.ports for s in project.services.values()) else []
    fed = {(u.service, u.index): u for u in uses}
    by_variable: dict[str, list[PortUse]] = {}
    for use in uses:
        by_variable.setdefault(use.variable, []).append(use)
    wanted = _closure(project, selected)

    problems: list[str] = []
    for name in wanted:
        for index, port in enumerate(project.services[name].ports):
            if port.published is None:
                continue
            feeder = fed.get((name, index))
            if feeder is not None and not pinned(feeder.variable, os_env):
                continue  # settled below, with the variable's other ports
            if (found := who(port.host_ip, port.published, port.protocol, me)) is not None:
                problems.append(_taken(name, port, found, feeder.variable if feeder else None))
    if problems:
        raise PortInUse(problems)

    overrides: dict[str, str] = {}
    choices: list[Choice] = []
    taken_here: set[int] = set()
    for variable, its_uses in by_variable.items():
        if pinned(variable, os_env) or not any(u.service in wanted for u in its_uses):
            continue
        preferred = its_uses[0].preferred
        candidates = _candidates(preferred, saved.get(variable))
        chosen = next(
            (
                n
                for n in candidates
                if n not in taken_here and all(who(u.host_ip, n, u.protocol, me) is None for u in its_uses)
            ),
            None,
        )
        if chosen is None:
            chosen = _any_free_port(its_uses[0])
        taken_here.add(chosen)
        if chosen == preferred:
            continue
        held = who(its_uses[0].host_ip, preferred, its_uses[0].protocol, me)
        note = (
            f"({preferred} is used by {held.short})"
            if held
            else f"(kept for this instance; {variable} prefers {preferred})"
        )
        overrides[variable] = str(chosen)
        choices.append(Choice(variable, preferred, chosen, note))
    if not overrides:
        return Settled(project, [])
    settled = reload(overrides)
    for use in uses:
        if use.variable in overrides:
            got = settled.services[use.service].ports[use.index].published
            if got != int(overrides[use.variable]):  # the variable did not feed the port as it did in the trial
                raise ConfigError(
                    Problem(
                        f"{use.service}'s host port {use.preferred} is taken, and setting {use.variable} to "
                        f"{overrides[use.variable]} did not move it (it became {got}).",
                        file=project.files[0] if project.files else None,
                        key=f"services.{use.service}.ports",
                        fix=f"set {use.variable} to a free port yourself.",
                    )
                )
    return Settled(settled, choices)


def notes_for(settled: Settled) -> dict[tuple[str, int], str]:
    """(service, host port) -> the note ``up`` prints beside the address of a port we chose."""
    notes: dict[tuple[str, int], str] = {}
    chosen = {c.chosen: c.note for c in settled.choices}
    for name, service in settled.project.services.items():
        for port in service.ports:
            if port.published in chosen:
                notes[(name, port.published)] = chosen[port.published]
    return notes


def _candidates(preferred: int, saved: str | None) -> list[int]:
    first = [int(saved)] if saved and saved.isdigit() and 0 < int(saved) < 65536 else []
    return list(dict.fromkeys([*first, preferred, *range(preferred + 1, min(preferred + SEARCH, 65535) + 1)]))


def _any_free_port(use: PortUse) -> int:
    import socket

    kind = socket.SOCK_STREAM if use.protocol == "tcp" else socket.SOCK_DGRAM
    host = use.host_ip if use.host_ip not in holders.WILDCARDS else "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.bind((host.strip("[]"), 0))
        number: int = probe.getsockname()[1]
        return number


def _closure(project: Project, selected: Sequence[str]) -> list[str]:
    from unistack import graph

    deps = {name: list(service.depends_on) for name, service in project.services.items()}
    chosen = graph.closure(deps, selected) if selected else set(deps)
    return [name for name in project.services if name in chosen]


def _taken(service: str, port: Port, found: Holder, variable: str | None) -> str:
    host = port.host_ip or "0.0.0.0"
    if variable is not None:
        fix = f"stop it, or set {variable} to a free port"
    else:  # a number written in the file
        fix = f"stop it, or publish another host port in services.{service}.ports"
    return (
        f"{service} cannot publish {host}:{port.published}/{port.protocol}: {found.long} listens on "
        f"{host}:{port.published}; {fix}"
    )


# --------------------------------------------------------------------- the saved choice


def saved_choices(state_dir: Path) -> dict[str, str]:
    """The ports chosen for this instance by its last ``up`` (variable -> port), kept until ``down``."""
    try:
        data = json.loads(state.ports_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def saved_overrides(state_dir: Path, os_env: Mapping[str, str]) -> dict[str, str]:
    """The saved choices that apply now: those of variables you did not pin."""
    return {k: v for k, v in saved_choices(state_dir).items() if not pinned(k, os_env)}


def save(state_dir: Path, choices: Sequence[Choice]) -> None:
    path = state.ports_file(state_dir)
    if not choices:
        forget(state_dir)
        return
    with contextlib.suppress(OSError):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({c.variable: str(c.chosen) for c in choices}) + "\n")
        tmp.replace(path)


def forget(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state.ports_file(state_dir).unlink()
