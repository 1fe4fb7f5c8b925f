"""One Compose service as the pieces of a Kubernetes pod template: its container (image, command, environment
sources, probes from the healthcheck, securityContext from the hardening keys, resources from
``deploy.resources``, the preStop that gives it its stop signal), the pod's own securityContext and volumes
(tmpfs and ``shm_size`` as memory-backed emptyDirs, secrets and configs as files), and the init containers that
wait for a ``service_healthy`` dependency. Pure data; what cannot map is a refusal or a warning in ``Findings``.
Never decides which object kind a service becomes (``render.py`` does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config.formats import parse_bytes
from unistack.config.model import Healthcheck, Project, Service

_SIGNALS_SH = {"SIGINT": "INT", "SIGQUIT": "QUIT", "SIGHUP": "HUP", "SIGUSR1": "USR1", "SIGUSR2": "USR2"}
# host-level keys a pod cannot be given (or must not be): refused, naming the key
_REFUSED = {
    "privileged": "a privileged container is root on the node",
    "devices": "host devices are not a pod's to take",
    "pid": "the host's process namespace",
    "ipc": "the host's IPC namespace",
    "userns_mode": "the host's user namespace",
}
# what Kubernetes has no place for in a pod: a warning, the rest of the service still renders
_DROPPED = {  # (``logging`` is left without a word: the kubelet keeps and rotates container logs)
    "init": "no init process option in a pod (use an image with tini, or shareProcessNamespace)",
    "dns": "the cluster's DNS applies",
    "extra_hosts": "use hostAliases by hand if the names are needed",
    "mac_address": "no fixed MAC addresses in a cluster",
    "cgroup_parent": "the kubelet owns cgroups",
    "storage_opt": "use the PersistentVolumeClaim's storage class",
}


# the service keys something here reads (or that mean nothing in a cluster: the build, the container's own name,
# the log driver, profiles, develop); any other key is warned as dropped
_MAPPED = frozenset(
    {
        "image", "build", "command", "entrypoint", "environment", "env_file", "networks", "network_mode", "volumes",
        "ports", "expose", "depends_on", "healthcheck", "restart", "deploy", "user", "read_only", "security_opt",
        "cap_add", "cap_drop", "tmpfs", "shm_size", "secrets", "configs", "labels", "stop_signal",
        "stop_grace_period", "working_dir", "hostname", "profiles", "sysctls", "container_name", "logging",
        "pull_policy", "platform", "develop", "mem_limit", "mem_reservation", "cpus", "group_add", "annotations",
        *_REFUSED, *_DROPPED,
    }
)  # fmt: skip


@dataclass
class Findings:
    """What ``render`` met: refusals (exit 2, nothing written) and warnings (written, said on stderr)."""

    file: Path | None = None
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (key path, message, fix)
    warnings: list[str] = field(default_factory=list)

    def refuse(self, where: str, message: str, fix: str) -> None:
        self.refusals.append((where, message, fix))

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


def dns_name(name: str) -> str:
    """A Compose name as a DNS-1123 label (what every object name here must be)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "x"


def labels(project: Project, service: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(service),
        "app.kubernetes.io/part-of": dns_name(project.name),
        "app.kubernetes.io/managed-by": "unistack",
    }


def meta(project: Project, name: str, service: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    meta["labels"] = (
        labels(project, service)
        if service
        else {"app.kubernetes.io/part-of": dns_name(project.name), "app.kubernetes.io/managed-by": "unistack"}
    )
    meta.update(extra)
    return meta


def selector(project: Project, service: str) -> dict[str, str]:
    full = labels(project, service)
    return {k: full[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def pairs(value: Any) -> dict[str, str]:
    """A Compose mapping written either way: ``{k: v}`` or ``["k=v", ...]``."""
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    found: dict[str, str] = {}
    for item in value or ():
        key, _, text = str(item).partition("=")
        found[key] = text
    return found


def seconds(value: float) -> int:
    """Kubernetes counts probe and grace periods in whole seconds (at least one)."""
    return max(1, math.ceil(value - 1e-9))


def cpu(value: Any) -> str:
    millicores = round(float(value) * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory(value: Any) -> str:
    amount = parse_bytes(value)
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if amount % size == 0 and amount >= size:
            return f"{amount // size}{unit}"
    return str(amount)


def image(project: Project, service: Service, registry: str | None) -> str:
    name = str(service.spec.get("image") or f"{project.name}-{service.name}")
    return f"{registry.rstrip('/')}/{name}" if registry else name


def command_of(check: Healthcheck) -> list[str]:
    """The healthcheck as an exec probe's argv: CMD as it is, CMD-SHELL through /bin/sh -c."""
    if check.kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(check.test)]
    return list(check.test)


def probes(check: Healthcheck) -> dict[str, Any]:
    """startupProbe over ``start_period`` (polled every ``start_interval``), then readiness and liveness at
    ``interval``/``timeout``/``retries``: ready is what Compose calls healthy."""
    action = {"exec": {"command": command_of(check)}}
    steady = {
        **action,
        "periodSeconds": seconds(check.interval),
        "timeoutSeconds": seconds(check.timeout),
        "failureThreshold": max(1, check.retries),
    }
    found: dict[str, Any] = {"readinessProbe": dict(steady), "livenessProbe": dict(steady)}
    if check.start_period > 0:
        period = seconds(check.start_interval)
        found["startupProbe"] = {
            **action,
            "periodSeconds": period,
            "timeoutSeconds": seconds(check.timeout),
            "failureThreshold": max(1, math.ceil(check.start_period / period)) + max(1, check.retries),
        }
    return found


def security(service: Service, findings: Findings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pod's securityContext, the container's) from ``user``, ``read_only``, ``security_opt``, ``cap_*``,
    ``sysctls``; the host-level keys refused."""
    spec = service.spec
    where = f"services.{service.name}"
    for key, why in _REFUSED.items():
        value = spec.get(key)
        if value and (key not in ("pid", "ipc", "userns_mode") or value == "host"):
            findings.refuse(f"{where}.{key}", f"{key} cannot map to a pod: {why}", f"remove {key} for the cluster")
    for key, why in _DROPPED.items():
        if spec.get(key):
            findings.warn(f"{where}.{key}", f"dropped: {why}")
    pod: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}  # Docker's default; a pod's is none
    container: dict[str, Any] = {}
    user = str(spec.get("user") or "")
    if user:
        uid, _, gid = user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            container["runAsUser"] = int(uid)
            container["runAsNonRoot"] = int(uid) != 0
            if gid:
                container["runAsGroup"] = int(gid)
                pod["fsGroup"] = int(gid)  # the volumes it mounts are its group's
        else:
            findings.warn(
                f"{where}.user",
                f"user {user!r} is a name: Kubernetes needs a number to enforce runAsNonRoot, so none is set "
                '(write the uid, e.g. user: "10001:10001")',
            )
    if spec.get("read_only"):
        container["readOnlyRootFilesystem"] = True
    for option in spec.get("security_opt") or ():
        text = str(option)
        if text.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true"):
            container["allowPrivilegeEscalation"] = False
        elif text.replace("=", ":") == "seccomp:unconfined":
            pod["seccompProfile"] = {"type": "Unconfined"}
        else:
            findings.warn(f"{where}.security_opt", f"{text!r} dropped: no pod field for it")
    capabilities: dict[str, list[str]] = {}
    for key, name in (("cap_add", "add"), ("cap_drop", "drop")):
        if spec.get(key):
            capabilities[name] = [str(c).removeprefix("CAP_") for c in spec[key]]
    if capabilities:
        container["capabilities"] = capabilities
    groups = [str(g) for g in spec.get("group_add") or ()]
    if groups:
        if all(g.isdigit() for g in groups):
            pod["supplementalGroups"] = [int(g) for g in groups]
        else:
            findings.warn(f"{where}.group_add", "dropped: Kubernetes takes group numbers, not names")
    if spec.get("sysctls"):
        pod["sysctls"] = [{"name": k, "value": v} for k, v in pairs(spec["sysctls"]).items()]
    return pod, container


def unmapped(service: Service, findings: Findings) -> None:
    """A warning for each key of the service that nothing here maps."""
    for key in service.spec:
        if key not in _MAPPED and not key.startswith("x-"):
            findings.warn(f"services.{service.name}.{key}", "dropped: no Kubernetes mapping")


def resources(service: Service, findings: Findings) -> dict[str, Any]:
    """``deploy.resources`` (or the service's own ``mem_limit``, ``mem_reservation``, ``cpus``): limits as limits,
    reservations as requests; ``pids`` has no pod field (warned)."""
    spec = dict((service.spec.get("deploy") or {}).get("resources") or {})
    own = service.spec
    limits = dict(spec.get("limits") or {})
    for key, name in (("mem_limit", "memory"), ("cpus", "cpus")):
        if own.get(key) is not None:
            limits.setdefault(name, own[key])
    reservations = dict(spec.get("reservations") or {})
    if own.get("mem_reservation") is not None:
        reservations.setdefault("memory", own["mem_reservation"])
    spec.update({"limits": limits, "reservations": reservations})
    result: dict[str, Any] = {}
    for key, name in (("limits", "limits"), ("reservations", "requests")):
        part = spec.get(key) or {}
        values: dict[str, str] = {}
        if part.get("cpus") is not None:
            values["cpu"] = cpu(part["cpus"])
        if part.get("memory") is not None:
            values["memory"] = memory(part["memory"])
        if values:
            result[name] = values
        if key == "limits" and part.get("pids") is not None:
            findings.warn(
                f"services.{service.name}.deploy.resources.limits.pids",
                "dropped: a pod has no process limit of its own (the kubelet's podPidsLimit applies to every pod)",
            )
        if part.get("devices"):
            findings.warn(f"services.{service.name}.deploy.resources.{key}.devices", "dropped: use a device plugin")
    return result


def stop(service: Service, findings: Findings) -> dict[str, Any]:
    """The stop signal: the kubelet always sends SIGTERM, so another signal is sent first by a preStop hook
    (``kill`` is a builtin of the image's ``/bin/sh``); the grace period as the pod's."""
    signal = service.stop_signal.upper()
    if not signal.startswith("SIG"):
        signal = f"SIG{signal}"
    if signal == "SIGTERM":
        return {}
    if signal in _SIGNALS_SH:
        return {"lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", f"kill -{_SIGNALS_SH[signal]} 1"]}}}}
    findings.warn(f"services.{service.name}.stop_signal", f"{signal} dropped: the kubelet sends SIGTERM")
    return {}


def file_mounts(project: Project, service: Service, kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for the service's ``secrets`` or ``configs``: each one file, from the Secret or ConfigMap
    of that name, at Compose's target (``/run/secrets/<name>`` or ``/<name>`` by default)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for ref in service.spec.get(kind) or ():
        ref = ref if isinstance(ref, dict) else {"source": ref}
        source = str(ref["source"])
        target = str(ref.get("target") or (f"/run/secrets/{source}" if kind == "secrets" else f"/{source}"))
        if kind == "secrets" and not target.startswith("/"):
            target = f"/run/secrets/{target}"
        mode = ref.get("mode", 0o444)
        bits = int(mode, 8) if isinstance(mode, str) else int(mode)
        volume = f"{kind[:-1]}-{dns_name(source)}"
        item = {"key": "content", "path": "content", "mode": bits}
        if kind == "secrets":
            volumes.append({"name": volume, "secret": {"secretName": object_name(project, source), "items": [item]}})
        else:
            volumes.append({"name": volume, "configMap": {"name": object_name(project, source), "items": [item]}})
        mounts.append({"name": volume, "mountPath": target, "subPath": "content", "readOnly": True})
    return volumes, mounts


def object_name(project: Project, key: str) -> str:
    """A top-level secret's or config's object name: the key, or its ``name``."""
    kind = "secrets" if key in (project.spec.get("secrets") or {}) else "configs"
    spec = (project.spec.get(kind) or {}).get(key) or {}
    return dns_name(str(spec.get("name") or key))


def memory_dirs(service: Service) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``tmpfs`` entries and ``shm_size`` as memory-backed emptyDirs (their size as the sizeLimit)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, entry in enumerate(service.spec.get("tmpfs") or ()):
        path, _, options = str(entry).partition(":")
        empty: dict[str, Any] = {"medium": "Memory"}
        for option in filter(None, options.split(",")):
            name, _, value = option.partition("=")
            if name == "size":
                empty["sizeLimit"] = memory(value)
        volumes.append({"name": f"tmpfs-{index}", "emptyDir": empty})
        mounts.append({"name": f"tmpfs-{index}", "mountPath": path})
    if service.spec.get("shm_size"):
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": memory(service.spec["shm_size"])}})
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    return volumes, mounts


def container(
    project: Project,
    service: Service,
    registry: str | None,
    env_sources: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    security_context: Mapping[str, Any],
    findings: Findings,
    *,
    probed: bool = True,
) -> dict[str, Any]:
    """The service's container: ``entrypoint`` as command, ``command`` as args, its environment from the
    ConfigMap and Secret ``render`` makes, ports, probes, hardening, resources."""
    spec = service.spec
    result: dict[str, Any] = {
        "name": dns_name(service.name),
        "image": image(project, service, registry),
        "imagePullPolicy": "IfNotPresent",
    }
    if spec.get("entrypoint") is not None:
        result["command"] = [str(a) for a in spec["entrypoint"]]
    if spec.get("command") is not None:
        result["args"] = [str(a) for a in spec["command"]]
    if spec.get("working_dir"):
        result["workingDir"] = str(spec["working_dir"])
    if env_sources:
        result["envFrom"] = env_sources
    if mounts:
        result["volumeMounts"] = mounts
    if probed and service.healthcheck is not None:
        result.update(probes(service.healthcheck))
    if security_context:
        result["securityContext"] = dict(security_context)
    if found := resources(service, findings):
        result["resources"] = found
    result.update(stop(service, findings))
    return result


def wait_for(dependency: str, own: Mapping[str, Any]) -> dict[str, Any]:
    """An init container, in the waiting service's own image, that ends once ``<dependency>-ready`` resolves: a
    headless Service publishes only the addresses of ready pods, and a pod is ready when its readiness probe
    (the healthcheck) passes. Needs ``/bin/sh`` and ``getent`` (glibc's, in every Debian-based image)."""
    name = f"{dns_name(dependency)}-ready"
    container: dict[str, Any] = {
        "name": f"wait-for-{dns_name(dependency)}",
        "image": own["image"],
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "/bin/sh",
            "-c",
            f'until getent hosts {name} >/dev/null; do echo "waiting for {dependency} to be healthy"; sleep 2; done',
        ],
        "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}, "requests": {"cpu": "10m", "memory": "16Mi"}},
    }
    if "securityContext" in own:
        container["securityContext"] = own["securityContext"]
    return container
