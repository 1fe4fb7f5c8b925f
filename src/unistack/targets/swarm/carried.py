"""What of a Compose service a Swarm service spec of Engine API 1.41 carries, and a warning for everything it
cannot: each key the exporter maps (``MAPPED``; ``shm_size`` becomes a tmpfs at /dev/shm), each one unistack
itself acts on before Swarm sees the service (``CONSUMED``), and for any other key, and for the nested settings
Swarm has no field for (a port's ``host_ip``, ``healthcheck.start_interval``, a network's fixed address, ...), a
warning naming the service and the key, so nothing is dropped without a word (``deploy --strict`` fails on
them). Pure; never maps anything itself (taskspec.py and export.py do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unistack.config.model import Service

MAPPED = frozenset(
    {
        "image", "command", "entrypoint", "environment", "volumes", "tmpfs", "user", "working_dir", "hostname",
        "read_only", "init", "cap_add", "cap_drop", "sysctls", "healthcheck", "stop_signal", "stop_grace_period",
        "ports", "networks", "secrets", "configs", "deploy", "labels", "logging", "extra_hosts", "dns",
        "dns_search", "dns_opt", "group_add", "tty", "stdin_open", "ulimits", "mem_limit", "mem_reservation",
        "cpus", "pids_limit", "restart", "shm_size",
    }
)  # fmt: skip
"""Keys the exporter maps onto the service spec (docs/deployment.md, "What maps to what")."""

CONSUMED = {
    "build": "built on the engine deploy talks to and pushed to the registry",
    "depends_on": "the deploy's layers: each waited for before its dependents",
    "profiles": "the loader's selection",
    "develop": "`unistack watch` on one host only",
    "env_file": "read into the environment",
    "extends": "merged by the loader",
    "pull_policy": "the nodes pull the pushed image by its id",
    "expose": "documentation only: a task's ports are reachable on its overlay networks",
}
"""Keys unistack acts on itself: nothing of them is meant to reach Swarm."""

WHY = {
    "security_opt": "no seccomp, AppArmor or no-new-privileges option in a service spec of API 1.41: each node's "
    'engine defaults apply (for no-new-privileges set `"no-new-privileges": true` in the nodes\' daemon.json)',
    "devices": "a service cannot take a node's devices",
    "privileged": "Swarm runs no privileged tasks",
    "ipc": "no IPC namespace mode in a service spec",
    "pid": "no PID namespace mode in a service spec",
    "userns_mode": "no user namespace mode in a service spec",
    "cgroup_parent": "each node's engine places the tasks' cgroups",
    "container_name": "Swarm names the tasks' containers itself (<service>.<slot>.<task id>)",
    "network_mode": "a task is attached to overlay networks only (`network_mode: none` is kept: no network)",
    "links": "use the service's name: every service is reachable by it on the networks it shares",
    "external_links": "no links in a swarm",
    "volumes_from": "no volumes_from in a service spec",
    "mac_address": "no fixed MAC addresses in a service spec",
    "oom_score_adj": "no OOM settings in a service spec",
    "oom_kill_disable": "no OOM settings in a service spec",
    "storage_opt": "no storage options in a service spec",
    "platform": "set `deploy.placement.constraints` (node.platform.arch==...) instead",
    "runtime": "no runtime choice in a service spec",
}
"""Why a key cannot travel, where there is more to say than "no field in API 1.41"."""

_NETWORK_KEYS = ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority", "driver_opts")
_VOLUME_KEYS = frozenset({"type", "source", "target", "read_only", "consistency"})
_RESERVATION_KEYS = ("devices", "generic_resources")


def warnings(service: Service) -> list[str]:
    """``services.NAME.KEY: why`` for each setting of ``service`` the Swarm service will not have."""
    spec = service.spec
    where = f"services.{service.name}"
    found = []
    for key in spec:
        if key in MAPPED or key in CONSUMED or key.startswith("x-"):
            continue
        if key == "network_mode" and spec[key] == "none":
            continue
        found.append(
            f"{where}.{key}: not carried: {WHY.get(key, 'no field for it in a Swarm service spec (API 1.41)')}"
        )
    check = spec.get("healthcheck") or {}
    if check.get("start_interval") is not None:
        found.append(
            f"{where}.healthcheck.start_interval: not carried: API 1.41 has no StartInterval; Swarm probes every "
            "`interval` during the start period too"
        )
    for index, port in enumerate(spec.get("ports") or ()):
        host_ip = str(port.get("host_ip") or "")
        if host_ip not in ("", "0.0.0.0", "::"):
            found.append(
                f"{where}.ports[{index}].host_ip: not carried: Swarm publishes {port.get('published')} on every "
                f"address of a node, not on {host_ip} only (put a firewall or a load balancer in front)"
            )
    networks = spec.get("networks")
    if isinstance(networks, Mapping):
        for name, options in networks.items():
            for key in _NETWORK_KEYS:
                if (options or {}).get(key):
                    found.append(f"{where}.networks.{name}.{key}: not carried: Swarm assigns the tasks' addresses")
    for index, volume in enumerate(spec.get("volumes") or ()):
        for key in sorted(set(volume) - _VOLUME_KEYS):
            if key == "bind" and set(volume[key]) <= {"create_host_path"}:
                continue  # a bind mount's source must exist on the node anyway
            found.append(f"{where}.volumes[{index}].{key}: not carried: no such mount option in a service spec")
    reservations = _dig(spec, "deploy", "resources", "reservations")
    for key in _RESERVATION_KEYS:
        if reservations.get(key):
            found.append(
                f"{where}.deploy.resources.reservations.{key}: not carried: unistack maps no generic resources"
            )
    return found


def _dig(spec: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        spec = spec.get(key) or {}
    return spec
