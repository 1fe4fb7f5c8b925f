"""Building the typed ``Project`` from the resolved, long-syntax document.

Owns the mapping from Compose keys to model fields: ``depends_on``, ``healthcheck`` (seconds, CMD/CMD-SHELL),
``restart`` / ``deploy.restart_policy`` merged with ``x-unistack.restart``, ``ports``, the service-level
``x-unistack.process`` and the top-level ``x-unistack.notify`` (and ``x-unistack.validate``, through
declared_checks.py). Problems in unistack's own keys are collected,
not raised one by one. Never reads files and never changes the document.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config.backups import read_backup
from unistack.config.declared_checks import DeclaredChecks
from unistack.config.formats import environment_mapping, parse_duration, parse_restart, resolve_path
from unistack.config.manifests import DependencyReader, refuse_in_production
from unistack.config.model import (
    Dependency,
    Healthcheck,
    Notifier,
    Port,
    ProcessSpec,
    Project,
    RestartPolicy,
    Service,
    from_data,
)
from unistack.config.yamlfile import KeyPath, Locations
from unistack.errors import Problem

_POLICY_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}


@dataclass
class ProjectBuilder:
    """Turns the checked document into a Project, recording problems with unistack's keys."""

    locations: Locations
    project_dir: Path
    variables: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)
    declared_volumes: set[str] = field(default_factory=set)  # top-level volumes (x-unistack.backup names them)

    def problem(self, key: KeyPath, message: str, fix: str | None = None) -> None:
        self.problems.append(self.locations.problem(key, message, fix))

    def duration(self, key: KeyPath, value: Any, default: float) -> float:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(key, f"{exc}.", "write durations like 10s, 1m30s, 1.5s, 100ms or 1h.")
            return default

    def whole_number(self, key: KeyPath, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.problem(key, f"{value!r} is not a whole number >= 0.")
            return None
        return value

    def project(self, doc: dict[str, Any], **fields: Any) -> Project:
        specs = doc.get("services") or {}
        self.declared_volumes = {str(k) for k in doc.get("volumes") or {}}
        services = {name: self.service(name, spec, set(specs)) for name, spec in specs.items()}
        refuse_in_production(fields.get("environment"), services, self.problem)
        return Project(
            services=services,
            volumes={k: dict(v or {}) for k, v in (doc.get("volumes") or {}).items()},
            networks={k: dict(v or {}) for k, v in (doc.get("networks") or {}).items()},
            notify=self.notifiers(doc),
            validate=DeclaredChecks(self.problem, self.duration).build(doc),
            variables=dict(self.variables),
            spec=doc,
            **fields,
        )

    def service(self, name: str, spec: dict[str, Any], known: set[str]) -> Service:
        """One service; optional dependencies on services that are not here are left out of the model."""
        where: KeyPath = ("services", name)
        depends_on: dict[str, Dependency] = {}
        for dep, options in (spec.get("depends_on") or {}).items():
            if dep not in known and options.get("required") is False:
                continue
            try:
                depends_on[dep] = from_data(
                    {k: v for k, v in options.items() if k in ("condition", "required", "restart")}, Dependency
                )
            except ValueError as exc:  # msgspec.ValidationError
                self.problem((*where, "depends_on", dep), _first_error(exc))
        ports = []
        for index, port in enumerate(spec.get("ports") or []):
            protocol = port.get("protocol", "tcp")
            if protocol not in ("tcp", "udp"):
                self.problem((*where, "ports", index), f"protocol {protocol!r} is not supported; use tcp or udp.")
                continue
            ports.append(
                Port(
                    host_ip=str(port.get("host_ip") or ""),
                    published=port.get("published"),
                    target=port["target"],
                    protocol=protocol,
                )
            )
        return Service(
            name=name,
            depends_on=depends_on,
            healthcheck=self.healthcheck(where, spec.get("healthcheck")),
            restart=self.restart(where, spec),
            stop_signal=str(spec.get("stop_signal") or "SIGTERM"),
            stop_grace_period=self.duration((*where, "stop_grace_period"), spec.get("stop_grace_period"), 10.0),
            environment=dict(spec.get("environment") or {}),
            ports=tuple(ports),
            profiles=tuple(str(p) for p in spec.get("profiles") or ()),
            process=self.process(where, spec),
            dependencies=DependencyReader(self.problem, self.duration, self.project_dir).read(where, spec),
            backup=read_backup(where, spec, self.declared_volumes, self.problem),
            spec=spec,
        )

    def healthcheck(self, where: KeyPath, spec: Any) -> Healthcheck | None:
        if not isinstance(spec, dict) or spec.get("disable") or not spec.get("test"):
            return None
        key: KeyPath = (*where, "healthcheck")
        test = spec["test"]
        retries = spec.get("retries")  # a bad value was reported by normalize
        if isinstance(retries, str) and retries.isdigit() and len(retries) <= 18:
            retries = int(retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            retries = None
        return Healthcheck(
            kind=test[0],
            test=tuple(test[1:]),
            interval=self.duration((*key, "interval"), spec.get("interval"), 30.0),
            timeout=self.duration((*key, "timeout"), spec.get("timeout"), 30.0),
            retries=3 if retries is None else retries,
            start_period=self.duration((*key, "start_period"), spec.get("start_period"), 0.0),
            start_interval=self.duration((*key, "start_interval"), spec.get("start_interval"), 5.0),
        )

    def restart(self, where: KeyPath, spec: dict[str, Any]) -> RestartPolicy:
        fields: dict[str, Any] = {}
        policy = (spec.get("deploy") or {}).get("restart_policy")
        if spec.get("restart") is not None:
            with contextlib.suppress(ValueError):  # reported by normalize
                fields["mode"], fields["max_attempts"] = parse_restart(spec["restart"])
        elif isinstance(policy, dict):
            key: KeyPath = (*where, "deploy", "restart_policy")
            condition = str(policy.get("condition", "any"))
            if condition in _POLICY_CONDITIONS:
                fields["mode"] = _POLICY_CONDITIONS[condition]
            else:
                self.problem(
                    (*key, "condition"),
                    f"restart_policy condition {condition!r} is not one of none, on-failure, any.",
                )
            fields["max_attempts"] = self.whole_number((*key, "max_attempts"), policy.get("max_attempts"))
            if policy.get("delay") is not None:
                fields["backoff_initial"] = self.duration((*key, "delay"), policy["delay"], 1.0)
            if policy.get("window") is not None:
                fields["reset_after"] = self.duration((*key, "window"), policy["window"], 60.0)
        unistack = spec.get("x-unistack")
        extension = unistack.get("restart") if isinstance(unistack, dict) else None  # else reported by process()
        if isinstance(extension, dict):
            key = (*where, "x-unistack", "restart")
            for name in extension:
                if name not in ("max_attempts", "backoff_initial", "backoff_max", "reset_after"):
                    self.problem(
                        (*key, name),
                        f"unknown x-unistack.restart key {name!r}.",
                        "use max_attempts, backoff_initial, backoff_max or reset_after.",
                    )
            if "max_attempts" in extension:
                fields["max_attempts"] = self.whole_number((*key, "max_attempts"), extension["max_attempts"])
            for name, default in (("backoff_initial", 1.0), ("backoff_max", 30.0), ("reset_after", 60.0)):
                if name in extension:
                    fields[name] = self.duration((*key, name), extension[name], default)
        elif extension is not None:
            self.problem((*where, "x-unistack", "restart"), "x-unistack.restart must be a mapping.")
        return RestartPolicy(**fields)

    def process(self, where: KeyPath, spec: dict[str, Any]) -> ProcessSpec | None:
        extension = spec.get("x-unistack")
        if extension is None:
            return None
        if not isinstance(extension, dict):
            self.problem((*where, "x-unistack"), "x-unistack must be a mapping.", "give it process: and restart:.")
            return None
        process = extension.get("process")
        if process is None:
            return None
        key: KeyPath = (*where, "x-unistack", "process")
        if not isinstance(process, dict):
            self.problem(key, "x-unistack.process must be a mapping.", "give it command:, working_dir:, environment:.")
            return None
        unknown = set(process) - {"command", "setup", "working_dir", "environment"}
        for name in sorted(unknown):
            self.problem(
                (*key, name),
                f"unknown x-unistack.process key {name!r}.",
                "use command, setup, working_dir or environment.",
            )
        setup = _command(process.get("setup")) or ()
        if process.get("setup") is not None and not setup:
            self.problem((*key, "setup"), "x-unistack.process.setup must be a list or a string.")
        command = _command(process.get("command"))
        if command is None:
            if "command" in process:
                self.problem((*key, "command"), "x-unistack.process.command must be a list or a string.")
            return None
        environment = dict(spec.get("environment") or {})
        try:
            environment.update(environment_mapping(process.get("environment"), self.variables))
        except ValueError as exc:
            self.problem((*key, "environment"), f"{exc}.")
        working_dir = process.get("working_dir")
        return ProcessSpec(
            command=command,
            setup=setup,
            working_dir=resolve_path(str(working_dir), self.project_dir) if working_dir else self.project_dir,
            environment=environment,
        )

    def notifiers(self, doc: dict[str, Any]) -> tuple[Notifier, ...]:
        extension = doc.get("x-unistack")
        if not isinstance(extension, dict) or extension.get("notify") is None:
            return ()
        key: KeyPath = ("x-unistack", "notify")
        entries = extension["notify"]
        if not isinstance(entries, list):
            self.problem(key, "x-unistack.notify must be a list.", "write - command: [...] or - webhook: URL.")
            return ()
        result = []
        for index, entry in enumerate(entries):
            where: KeyPath = (*key, index)
            if not isinstance(entry, dict) or ("command" in entry) == ("webhook" in entry):
                self.problem(where, "each notifier needs exactly one of command or webhook.")
                continue
            unknown = set(entry) - {"command", "webhook", "timeout"}
            if unknown:
                self.problem(
                    where, f"unknown notifier key(s) {', '.join(sorted(unknown))}.", "use command, webhook, timeout."
                )
            command = _command(entry["command"]) if "command" in entry else None
            if "command" in entry and command is None:
                self.problem((*where, "command"), "a notifier command must be a list or a string.")
                continue
            result.append(
                Notifier(
                    command=command,
                    webhook=str(entry["webhook"]) if "webhook" in entry else None,
                    timeout=self.duration((*where, "timeout"), entry.get("timeout"), 10.0),
                )
            )
        return tuple(result)


def _command(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value.strip():
        return ("/bin/sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    return None


def _first_error(exc: ValueError) -> str:
    """msgspec's "Expected `bool`, got `str` - at `$.required`" as "required: expected `bool`, got `str`."""
    message, _, where = str(exc).partition(" - at `$.")
    message = message[:1].lower() + message[1:]
    return f"{where.rstrip('`')}: {message}." if where else f"{message}."
