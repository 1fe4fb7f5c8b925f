"""Short syntax to long syntax: one service's mapping rewritten into long syntax (``ports``, ``volumes``,
``depends_on``, ``environment`` plus ``env_file``, ``healthcheck``, ``networks``, ``build``), each value parsed
by ``formats``. A value that cannot be parsed becomes a Problem (file, line, key, fix) and the value is dropped,
so every problem is reported at once. Never decides what is active, never checks across services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config import inputs
from unistack.config.envfile import parse_dotenv
from unistack.config.formats import (
    CONDITIONS,
    environment_mapping,
    healthcheck_test,
    parse_bytes,
    parse_duration,
    parse_port,
    parse_restart,
    parse_volume,
    resolve_path,
)
from unistack.config.yamlfile import KeyPath, Locations
from unistack.errors import ConfigError, Problem


@dataclass
class Normalizer:
    """Rewrites services into long syntax, collecting problems located through ``locations``."""

    locations: Locations
    project_dir: Path
    variables: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)

    def problem(self, key: KeyPath, message: str, fix: str | None = None) -> None:
        self.problems.append(self.locations.problem(key, message, fix))

    def field(self, key: KeyPath, parse: Callable[[Any], Any], value: Any, fix: str) -> Any:
        """Parse one value; on failure record a Problem and return None."""
        try:
            return parse(value)
        except ValueError as exc:
            self.problem(key, f"{exc}.", fix)
            return None

    def service(self, name: str, spec: Any) -> dict[str, Any]:
        where: KeyPath = ("services", name)
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            self.problem(where, f"service {name!r} must be a mapping.", "indent its keys under the name.")
            return {}
        out = dict(spec)
        self._environment(name, out)
        if "ports" in out:
            ports: list[dict[str, Any]] = []
            for index, entry in enumerate(_as_list(out["ports"])):
                parsed = self.field((*where, "ports", index), parse_port, entry, "write it like 8080:80.")
                ports.extend(parsed or [])
            out["ports"] = ports
        if "volumes" in out:
            out["volumes"] = [
                v
                for i, entry in enumerate(_as_list(out["volumes"]))
                if (
                    v := self.field(
                        (*where, "volumes", i),
                        lambda e: parse_volume(e, self.project_dir),
                        entry,
                        "write it like ./data:/data or name:/data.",
                    )
                )
                is not None
            ]
        if "depends_on" in out:
            out["depends_on"] = self._depends_on(name, out["depends_on"])
        if "healthcheck" in out:
            out["healthcheck"] = self._healthcheck(name, out["healthcheck"])
        if "restart" in out:
            self.field((*where, "restart"), parse_restart, out["restart"], "use one of the listed words.")
        if "stop_grace_period" in out:
            self.field((*where, "stop_grace_period"), parse_duration, out["stop_grace_period"], _DURATION_FIX)
        for key in ("mem_limit", "mem_reservation", "memswap_limit", "shm_size"):
            if key in out and out[key] is not None:
                size = self.field((*where, key), parse_bytes, out[key], "write it like 512m or 1g.")
                if size is not None:
                    out[key] = size
        if isinstance(out.get("networks"), list):
            out["networks"] = {str(n): None for n in out["networks"]}
        if isinstance(out.get("build"), str):
            out["build"] = {"context": out["build"]}
        build = out.get("build")
        if isinstance(build, dict) and isinstance(build.get("context"), str) and "://" not in build["context"]:
            build = out["build"] = {**build, "context": str(resolve_path(build["context"], self.project_dir))}
        if isinstance(build, dict) and isinstance(
            build.get("args"), list
        ):  # as environment: a bare NAME from the shell
            arguments = self.field((*where, "build", "args"), self._arguments, build["args"], "write NAME: value.")
            out["build"] = {**build, "args": arguments or {}}
        develop = out.get("develop")
        if isinstance(develop, dict) and isinstance(develop.get("watch"), list):
            out["develop"] = {**develop, "watch": [self._watch_rule(rule) for rule in develop["watch"]]}
        if isinstance(out.get("profiles"), str):
            out["profiles"] = [out["profiles"]]
        return out

    def _arguments(self, value: Any) -> dict[str, str]:
        return environment_mapping(value, self.variables)

    def _watch_rule(self, rule: Any) -> Any:
        """A ``develop.watch`` rule with its path resolved against the project folder, as Compose resolves it."""
        if isinstance(rule, dict) and isinstance(rule.get("path"), str) and rule["path"]:
            return {**rule, "path": str(resolve_path(rule["path"], self.project_dir))}
        return rule

    def resources(self, section: str, value: dict[str, Any]) -> dict[str, Any]:
        """Top-level ``secrets`` / ``configs`` with their ``file`` resolved against the project folder."""
        if section not in ("secrets", "configs"):
            return value
        return {
            name: {**spec, "file": str(resolve_path(spec["file"], self.project_dir))}
            if isinstance(spec, dict) and isinstance(spec.get("file"), str)
            else spec
            for name, spec in value.items()
        }

    def _environment(self, name: str, out: dict[str, Any]) -> None:
        where: KeyPath = ("services", name)
        environment: dict[str, str] = {}
        files = out.get("env_file")
        if files is not None:
            entries = []
            for index, entry in enumerate(_as_list(files)):
                item = entry if isinstance(entry, dict) else {"path": entry}
                path = resolve_path(str(item.get("path", "")), self.project_dir)
                required = item.get("required", True) is not False
                entries.append({"path": str(path), "required": required})
                if not inputs.is_file(path):
                    if required:
                        self.problem(
                            (*where, "env_file", index),
                            f"env file {path} does not exist.",
                            "create it, fix the path, or mark it 'required: false'.",
                        )
                    continue
                try:
                    text = inputs.read_text(path)
                    environment.update(parse_dotenv(text, self.variables, file=path))
                except (OSError, UnicodeDecodeError) as exc:
                    self.problem((*where, "env_file", index), f"cannot read env file {path}: {exc}.")
                except ConfigError as exc:
                    self.problems.extend(exc.problems)
            out["env_file"] = entries
        if "environment" in out:
            try:
                environment.update(environment_mapping(out["environment"], self.variables))
            except ValueError as exc:
                self.problem((*where, "environment"), f"{exc}.", "write KEY: value lines or - KEY=value.")
        if "environment" in out or files is not None:
            out["environment"] = environment

    def _depends_on(self, name: str, value: Any) -> dict[str, dict[str, Any]]:
        where: KeyPath = ("services", name, "depends_on")
        result: dict[str, dict[str, Any]] = {}
        if isinstance(value, list):
            value = {str(v): None for v in value}
        if not isinstance(value, dict):
            self.problem(where, "depends_on must be a list of service names or a mapping.")
            return result
        for dep, options in value.items():
            entry = {"condition": "service_started", "required": True, "restart": False}
            if isinstance(options, dict):
                entry.update(options)
            if entry["condition"] not in CONDITIONS:
                self.problem(
                    (*where, dep, "condition"),
                    f"condition {entry['condition']!r} is not one of {', '.join(CONDITIONS)}.",
                    "use one of the listed conditions.",
                )
                entry["condition"] = "service_started"
            result[str(dep)] = entry
        return result

    def _healthcheck(self, name: str, value: Any) -> dict[str, Any] | None:
        where: KeyPath = ("services", name, "healthcheck")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(where, "healthcheck must be a mapping.", "give it test:, interval:, retries:, ...")
            return None
        out = dict(value)
        if "test" in out:
            test = self.field((*where, "test"), healthcheck_test, out["test"], "use [CMD, ...] or a string.")
            if test is None:
                out["disable"] = True
                out.pop("test")
            else:
                out["test"] = test
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in out:
                self.field((*where, key), parse_duration, out[key], _DURATION_FIX)
        if "retries" in out:
            retries = out["retries"]
            if isinstance(retries, str) and retries.strip().isdigit() and len(retries.strip()) <= 18:
                retries = out["retries"] = int(retries)
            if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
                self.problem((*where, "retries"), f"retries must be a whole number >= 0, not {retries!r}.")
        return out


_DURATION_FIX = "write durations like 10s, 1m30s, 1.5s, 100ms or 1h."


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
