"""One Compose service's container and task pieces in the Engine API's own shapes (pure): the container spec's
keyword arguments (command, environment, mounts with volumes and tmpfs, user, hardening, healthcheck, labels,
extra hosts, DNS, groups), the raw container fields the SDK has no argument for (ulimits), the log driver, resources
(the service's own ``mem_limit``/``cpus``/``pids_limit`` too), the restart policy, update and rollback configs.
Never decides a service's mode, placement or endpoint (export.py does), never talks to an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from unistack.config.formats import parse_bytes, parse_duration
from unistack.config.model import Project, Service

Mode = Literal["replicated", "global", "replicated-job", "global-job"]
STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.stack.service"  # ours: the Compose service's name
NS = 1_000_000_000


def _full(project: Project, name: str) -> str:
    return f"{project.name}_{name}"


def container(project: Project, service: Service) -> dict[str, Any]:
    spec = service.spec
    labels = {STACK_LABEL: project.name, SERVICE_LABEL: service.name}
    mounts: list[dict[str, Any]] = []
    for volume in spec.get("volumes") or ():
        kind = str(volume.get("type", "volume"))
        source = volume.get("source")
        if kind == "volume" and source in project.volumes:
            source = str((project.volumes[source] or {}).get("name") or _full(project, source))
        mount: dict[str, Any] = {
            "Type": kind,
            "Target": str(volume["target"]),
            "ReadOnly": bool(volume.get("read_only")),
        }
        if source:
            mount["Source"] = str(source)
        if kind == "volume":
            mount["VolumeOptions"] = {"Labels": {STACK_LABEL: project.name}}
        mounts.append(mount)
    for entry in spec.get("tmpfs") or ():
        path, _, options = str(entry).partition(":")
        tmpfs: dict[str, Any] = {}
        for option in filter(None, options.split(",")):
            name, _, value = option.partition("=")
            if name == "size":
                tmpfs["SizeBytes"] = parse_bytes(value)
            elif name == "mode":
                tmpfs["Mode"] = int(value, 8)
        mounts.append({"Type": "tmpfs", "Target": path, "TmpfsOptions": tmpfs})
    if spec.get("shm_size") and not any(m["Target"] == "/dev/shm" for m in mounts):
        # no ShmSize in a service spec: a tmpfs of that size at /dev/shm (the engine then mounts no shm of its own)
        shm = {"SizeBytes": parse_bytes(spec["shm_size"]), "Mode": 0o1777}
        mounts.append({"Type": "tmpfs", "Target": "/dev/shm", "TmpfsOptions": shm})

    container: dict[str, Any] = {
        "labels": {**key_values(spec.get("labels")), **labels},
        "env": dict(service.environment),
        "mounts": mounts,
        "stop_signal": service.stop_signal,
        "stop_grace_period": int(service.stop_grace_period * NS),
    }
    if spec.get("entrypoint") is not None:
        container["command"] = list(spec["entrypoint"])
    if spec.get("command") is not None:
        container["args"] = list(spec["command"])
    for key, name in (("user", "user"), ("working_dir", "workdir"), ("hostname", "hostname")):
        if spec.get(key):
            container[name] = str(spec[key])
    for key in ("read_only", "init"):
        if spec.get(key) is not None:
            container[key] = bool(spec[key])
    for key in ("cap_add", "cap_drop"):
        if spec.get(key):
            container[key] = [c if str(c).startswith("CAP_") or c == "ALL" else f"CAP_{c}" for c in spec[key]]
    if spec.get("extra_hosts"):
        container["hosts"] = dict(_hosts(spec["extra_hosts"]))  # the SDK writes Swarm's "IP host" lines
    dns = {
        name: [str(v) for v in ([spec[key]] if isinstance(spec[key], str) else spec[key])]
        for key, name in (("dns", "Nameservers"), ("dns_search", "Search"), ("dns_opt", "Options"))
        if spec.get(key)
    }
    if dns:
        container["dns_config"] = dns
    if spec.get("group_add"):
        container["groups"] = [str(g) for g in spec["group_add"]]
    for key, name in (("tty", "tty"), ("stdin_open", "open_stdin")):
        if spec.get(key) is not None:
            container[name] = bool(spec[key])
    if spec.get("sysctls"):
        container["sysctls"] = {str(k): str(v) for k, v in dict(spec["sysctls"]).items()}
    check = service.healthcheck
    if check is not None:
        container["healthcheck"] = {
            "Test": [check.kind, *check.test],
            "Interval": int(check.interval * NS),
            "Timeout": int(check.timeout * NS),
            "Retries": check.retries,
            "StartPeriod": int(check.start_period * NS),
        }
    elif spec.get("healthcheck", {}).get("disable") or spec.get("healthcheck", {}).get("test") == ["NONE"]:
        container["healthcheck"] = {"Test": ["NONE"]}
    return container


def key_values(value: Any) -> dict[str, str]:
    """Compose's labels: a mapping or a list of ``key=value``."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return {k: v for k, _, v in (str(item).partition("=") for item in value)}


def _hosts(value: Any) -> list[tuple[str, str]]:
    """``extra_hosts``: a mapping, or ``host:ip`` / ``host=ip`` entries (an IPv6 address has colons of its own)."""
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    pairs = []
    for entry in map(str, value):
        cut = entry.find("=") if "=" in entry else entry.find(":")
        pairs.append((entry[:cut], entry[cut + 1 :].strip("[]")))
    return pairs


def extra(spec: Mapping[str, Any]) -> dict[str, Any]:
    """ContainerSpec fields of API 1.41 that docker.types.ContainerSpec takes no argument for: ``Ulimits``."""
    limits = []
    for name, value in (spec.get("ulimits") or {}).items():
        soft, hard = (value["soft"], value["hard"]) if isinstance(value, Mapping) else (value, value)
        limits.append({"Name": str(name), "Soft": int(soft), "Hard": int(hard)})
    return {"Ulimits": limits} if limits else {}


def log_driver(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """``logging`` as TaskTemplate.LogDriver (each node's engine runs the driver)."""
    logging = spec.get("logging") or {}
    if not logging.get("driver") and not logging.get("options"):
        return None
    return {
        "Name": str(logging.get("driver") or "json-file"),
        "Options": {str(k): str(v) for k, v in (logging.get("options") or {}).items()},
    }


def resources(resources: Mapping[str, Any], own: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``deploy.resources``, else the service's own ``cpus``, ``mem_limit``, ``pids_limit``, ``mem_reservation``."""
    result: dict[str, Any] = {}
    own = own or {}
    fallback = {
        "limits": {"cpus": own.get("cpus"), "memory": own.get("mem_limit"), "pids": own.get("pids_limit")},
        "reservations": {"memory": own.get("mem_reservation")},
    }
    for key, name in (("limits", "Limits"), ("reservations", "Reservations")):
        part = {k: v for k, v in fallback[key].items() if v is not None} | dict(resources.get(key) or {})
        values: dict[str, Any] = {}
        if part.get("cpus") is not None:
            values["NanoCPUs"] = int(float(part["cpus"]) * NS)
        if part.get("memory") is not None:
            values["MemoryBytes"] = parse_bytes(part["memory"])
        if key == "limits" and part.get("pids") is not None:
            values["Pids"] = int(part["pids"])
        if values:
            result[name] = values
    return result


def restart(policy: Mapping[str, Any] | None, mode: Mode, service: Service) -> dict[str, Any]:
    if policy:
        result: dict[str, Any] = {"Condition": str(policy.get("condition", "any"))}
        if policy.get("delay") is not None:
            result["Delay"] = int(parse_duration(policy["delay"]) * NS)
        if policy.get("max_attempts") is not None:
            result["MaxAttempts"] = int(policy["max_attempts"])
        if policy.get("window") is not None:
            result["Window"] = int(parse_duration(policy["window"]) * NS)
        return result
    if mode.endswith("-job"):
        return {"Condition": "none"}
    # Compose's default `restart: "no"` means nothing on a cluster (docker stack deploy ignores `restart`): a task
    # lost with its node must run elsewhere
    return {"Condition": "on-failure" if service.restart.mode == "on-failure" else "any", "Delay": 1 * NS}


def update(config: Mapping[str, Any] | None, start_first: bool, rollback: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {
        "Parallelism": 1,
        "FailureAction": "rollback" if start_first and not rollback else "pause",
        "Monitor": 15 * NS,
        "Order": "start-first" if start_first else "stop-first",
    }
    for key, name in (("parallelism", "Parallelism"), ("failure_action", "FailureAction"), ("order", "Order")):
        if config and config.get(key) is not None:
            result[name] = config[key]
    for key, name in (("delay", "Delay"), ("monitor", "Monitor")):
        if config and config.get(key) is not None:
            result[name] = int(parse_duration(config[key]) * NS)
    if config and config.get("max_failure_ratio") is not None:
        result["MaxFailureRatio"] = float(config["max_failure_ratio"])
    return result
