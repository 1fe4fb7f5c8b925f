"""Whole-project checks on the resolved document: each a small function returning Problems.

Owns what can only be judged across the document: unknown keys (with a "did you mean" suggestion),
``depends_on`` naming unknown services, dependency cycles, two services publishing the same host port, and
(only when asked for) services that cannot run as host processes. ``run_checks`` runs every check so the
user fixes everything in one go. Value formats (durations, restart words, ports) are checked where they are
parsed, in ``normalize``. Never changes the document.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from unistack.config.references import check_references, check_something_to_run
from unistack.config.yamlfile import Locations
from unistack.errors import Problem

if TYPE_CHECKING:
    from unistack.config.model import Project

Document = dict[str, Any]
Check = Callable[[Document, Locations], list[Problem]]

# The service properties of the Compose Specification schema (compose-spec/compose-spec, Apache-2.0).
SERVICE_KEYS = frozenset(
    [
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ]
)
TOP_LEVEL_KEYS = frozenset(
    ["configs", "include", "models", "name", "networks", "secrets", "services", "version", "volumes"]
)
UNISTACK_SERVICE_KEYS = frozenset(["process", "restart", "dependencies", "backup"])


def _unknown(key: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "remove it or prefix it with x- to keep it as an extension."


def check_unknown_keys(doc: Document, locations: Locations) -> list[Problem]:
    problems = []
    for key in doc:
        if key not in TOP_LEVEL_KEYS and not key.startswith("x-"):
            problems.append(locations.problem((key,), f"unknown top-level key {key!r}.", _unknown(key, TOP_LEVEL_KEYS)))
    for name, spec in _services(doc).items():
        for key in spec:
            if key not in SERVICE_KEYS and not key.startswith("x-"):
                problems.append(
                    locations.problem(
                        ("services", name, key),
                        f"service {name!r} has unknown key {key!r}.",
                        _unknown(key, SERVICE_KEYS),
                    )
                )
        extension = spec.get("x-unistack")
        if isinstance(extension, dict):
            for key in extension:
                if key not in UNISTACK_SERVICE_KEYS:
                    problems.append(
                        locations.problem(
                            ("services", name, "x-unistack", key),
                            f"service {name!r} has unknown x-unistack key {key!r}.",
                            _unknown(key, UNISTACK_SERVICE_KEYS),
                        )
                    )
    return problems


def check_dependencies_exist(doc: Document, locations: Locations) -> list[Problem]:
    services = _services(doc)
    known = ", ".join(sorted(services)) or "none"
    problems = []
    for name, spec in services.items():
        for dep, options in (spec.get("depends_on") or {}).items():
            if dep not in services and options.get("required", True):
                problems.append(
                    locations.problem(
                        ("services", name, "depends_on", dep),
                        f"service {name!r} depends on {dep!r}, which is not a service here (known: {known}).",
                        "fix the name, define the service, or mark the dependency 'required: false'.",
                    )
                )
    return problems


def check_no_cycles(doc: Document, locations: Locations) -> list[Problem]:
    from unistack.graph import find_cycle

    services = _services(doc)
    graph = {name: [d for d in (spec.get("depends_on") or {}) if d in services] for name, spec in services.items()}
    loop = find_cycle(graph)
    if not loop:
        return []
    return [
        locations.problem(
            ("services", loop[0], "depends_on", loop[1]),
            f"dependency cycle: {' -> '.join(loop)}.",
            "remove one of these depends_on entries.",
        )
    ]


_ANY_HOST = ("", "0.0.0.0", "::")


def check_port_conflicts(doc: Document, locations: Locations) -> list[Problem]:
    seen: list[tuple[str, dict[str, Any]]] = []
    problems = []
    for name, spec in _services(doc).items():
        for index, port in enumerate(spec.get("ports") or []):
            if port.get("published") is None:
                continue
            for other_name, other in seen:
                same = port["published"] == other["published"] and port.get("protocol") == other.get("protocol")
                hosts = (port.get("host_ip", ""), other.get("host_ip", ""))
                if same and (hosts[0] == hosts[1] or hosts[0] in _ANY_HOST or hosts[1] in _ANY_HOST):
                    problems.append(
                        locations.problem(
                            ("services", name, "ports", index),
                            f"services {other_name!r} and {name!r} both publish host port "
                            f"{port['published']}/{port.get('protocol', 'tcp')}.",
                            "give one of them another published port.",
                        )
                    )
                    break
            seen.append((name, port))
    return problems


CHECKS: list[Check] = [
    check_unknown_keys,
    check_dependencies_exist,
    check_no_cycles,
    check_port_conflicts,
    check_references,  # references.py: declared volumes, networks, secrets, configs; something to run
    check_something_to_run,
]


def run_checks(doc: Document, locations: Locations) -> list[Problem]:
    """Every problem every check finds (an empty list means the document is fine)."""
    return [problem for check in CHECKS for problem in check(doc, locations)]


# Isolation a container gives and a host process cannot: refused in process mode rather than silently dropped.
CONTAINER_ONLY = ("user", "cap_add", "cap_drop", "read_only", "security_opt", "pids_limit", "privileged")


def _container_only(service: Any) -> list[str]:
    spec = service.spec
    found = [key for key in CONTAINER_ONLY if spec.get(key) not in (None, False, [], "")]
    resources = (spec.get("deploy") or {}).get("resources") or {}
    if resources.get("limits") or resources.get("reservations"):
        found.append("deploy.resources")
    return found


def check_for_process_runtime(project: Project) -> list[Problem]:
    """Problems that stop this project from running as host processes: a service without a command, or one that
    asks for container isolation (non-root user, capabilities, read-only root, limits) a host process cannot get."""
    file = project.files[0] if project.files else None
    problems = [
        Problem(
            f"service {name!r} has no x-unistack.process.command, so it cannot run as a host process.",
            file=file,
            key=f"services.{name}.x-unistack.process.command",
            fix="add x-unistack: {process: {command: [...]}} to it, or use --runtime docker.",
        )
        for name, service in project.services.items()
        if service.process is None
    ]
    for name, service in project.services.items():
        if keys := _container_only(service):
            problems.append(
                Problem(
                    f"service {name!r} asks for container isolation ({', '.join(keys)}), which a host process "
                    f"cannot be given (set in {', '.join(f.name for f in project.files)}).",
                    key=f"services.{name}.{keys[0]}",
                    fix="run it with --runtime docker (the production overlay is meant for containers), or leave "
                    "these settings to a compose.<env>.yaml that only container environments load.",
                )
            )
    from unistack.config.manifests import runtime_problems

    problems.extend(runtime_problems(project, containers=False))
    return problems


def _services(doc: Document) -> dict[str, dict[str, Any]]:
    services = doc.get("services") or {}
    return {name: spec for name, spec in services.items() if isinstance(spec, dict)}
