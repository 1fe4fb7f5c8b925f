"""The resolved Project as Swarm objects: overlay networks, secrets and configs, and one service spec per Compose
service, with the dependency layers the driver deploys in. Pure: no engine, no files read except the secrets' and
configs' own files (their content is what Swarm stores).

What maps to what (docs/deployment.md, Swarm):

- networks -> overlay networks ``<project>_<name>``, ``internal`` kept, attachable; aliases: the service's name.
- a service -> a Swarm service ``<project>_<service>`` with Compose's stack labels (``com.docker.stack.namespace``)
  so ``docker stack ps`` recognises it. A one-shot (a dependent waits for it with
  ``service_completed_successfully``) is a ``replicated-job``, or a ``global-job`` when a ``global`` service mounts
  its volume (every node's copy of the volume is filled).
- ``deploy.mode`` / ``replicas`` / ``resources`` (``pids`` too) / ``placement`` / ``update_config`` /
  ``rollback_config`` / ``restart_policy``. Without an ``update_config``, a healthchecked service with no host
  port and no volume it writes is updated start-first with ``failure_action: rollback``; ``restart``'s budget is
  a one-host notion, so a long-running service restarts on any exit (``condition: any``; ``on-failure`` stays)
  and a one-shot never.
- A replicated service that writes a named volume is pinned to the node that holds it (``PINNED`` label, set by
  the driver on first deploy): local volumes do not travel.
- Endpoint and publish modes: the file's ``deploy.endpoint_mode`` and port ``mode`` win; otherwise ``vip`` and
  ``ingress`` when the kernel has IPVS, else ``dnsrr`` and ``host`` (``Modes``). A service publishing host-mode
  ports with no mode of its own runs ``global``: one task per node, each node's address answers.
- ``labels`` -> the containers' labels, ``deploy.labels`` -> the service's; ``logging`` -> the task's log driver;
  ``extra_hosts``, ``dns*``, ``group_add``, ``ulimits``, ``tty``, ``stdin_open`` -> the container spec's fields;
  a network's ``aliases`` are added to the service's name; ``placement.preferences`` and
  ``max_replicas_per_node`` are kept. What no field carries is a warning (carried.py, ``StackPlan.warnings``).
- secrets / configs -> Swarm secrets / configs named ``<project>_<name>-<sha256[:10]>`` (immutable in Swarm: new
  content is a new object, and the services roll over to it), mounted as files, never as environment values.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from unistack import graph
from unistack.config.model import Project, Service
from unistack.errors import ConfigError, Problem
from unistack.targets.swarm import carried, taskspec
from unistack.targets.swarm.taskspec import STACK_LABEL, Mode

PINNED = "dev.unistack.volume"  # node label prefix: node.labels.dev.unistack.volume.<project>_<volume>


@dataclass(frozen=True)
class Modes:
    """How services are reached: ``endpoint`` (vip needs IPVS in the kernel) and ``publish`` (ingress: the routing
    mesh, IPVS again; host: the port on the node that runs the task)."""

    endpoint: Literal["vip", "dnsrr"]
    publish: Literal["ingress", "host"]

    @staticmethod
    def detect(modules: Path = Path("/proc/modules"), builtin: Path | None = None) -> Modes:
        """vip + ingress when this kernel has IPVS (loaded, built in, or loadable), else dnsrr + host."""
        release = os.uname().release
        builtin = builtin or Path(f"/lib/modules/{release}/modules.builtin")
        found = Path("/proc/net/ip_vs").exists()
        for listing in (modules, builtin, Path(f"/lib/modules/{release}/modules.dep")):
            try:
                found = found or "ip_vs" in listing.read_text()
            except OSError:
                continue
        return Modes("vip", "ingress") if found else Modes("dnsrr", "host")


@dataclass(frozen=True)
class Blob:
    """A secret or config: its Swarm name (versioned by content) and content."""

    key: str  # the top-level name in the file
    name: str
    data: bytes


@dataclass(frozen=True)
class FileRef:
    key: str  # the top-level secret/config name
    target: str
    uid: str
    gid: str
    mode: int


@dataclass(frozen=True)
class SwarmService:
    service: str
    name: str
    mode: Mode
    replicas: int | None
    image: str  # the image as this machine's engine names it (the driver replaces it with the registry's)
    container: dict[str, Any]  # docker.types.ContainerSpec keyword arguments, except image, secrets, configs
    container_fields: dict[str, Any] = field(default_factory=dict)  # ContainerSpec fields the SDK takes no argument for
    labels: dict[str, str] = field(default_factory=dict)  # the service's own (deploy.labels)
    log_driver: dict[str, Any] | None = None  # the Engine API's TaskTemplate.LogDriver
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)  # the Engine API's TaskTemplate.Resources
    restart_policy: dict[str, Any] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()
    preferences: tuple[tuple[str, str], ...] = ()  # (strategy, descriptor): ("spread", "node.labels.zone")
    max_replicas: int | None = None  # per node
    pinned_volumes: tuple[str, ...] = ()  # full volume names: pinned where they are
    networks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (network, aliases)
    endpoint: dict[str, Any] = field(default_factory=dict)  # the Engine API's EndpointSpec
    update_config: dict[str, Any] | None = None
    rollback_config: dict[str, Any] | None = None
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    healthchecked: bool = False

    @property
    def is_job(self) -> bool:
        return self.mode.endswith("-job")


@dataclass(frozen=True)
class Network:
    name: str
    internal: bool
    labels: dict[str, str]


@dataclass(frozen=True)
class StackPlan:
    project: str
    networks: tuple[Network, ...]
    secrets: tuple[Blob, ...]
    configs: tuple[Blob, ...]
    services: dict[str, SwarmService]
    layers: tuple[tuple[str, ...], ...]
    modes: Modes
    warnings: tuple[str, ...] = ()  # ``services.NAME.KEY: why`` for each setting the swarm will not have


def export(project: Project, modes: Modes, services: list[str] | None = None) -> StackPlan:
    """The whole plan; every problem found is reported at once (ConfigError)."""
    problems: list[Problem] = []
    names = services or list(project.services)
    selected = {n: project.services[n] for n in graph.closure(_graph(project), names)}
    labels = {STACK_LABEL: project.name}
    declared = {"default": {}, **project.networks}  # Compose's implicit default network
    networks = tuple(
        Network(_full(project, key), bool((spec or {}).get("internal")), dict(labels))
        for key, spec in declared.items()
        if any(key in _networks_of(s) for s in selected.values())
    )
    secrets = _blobs(project, "secrets", problems)
    configs = _blobs(project, "configs", problems)
    one_shots = {
        dep
        for s in selected.values()
        for dep, d in s.depends_on.items()
        if d.condition == "service_completed_successfully"
    }
    exported = {
        name: _service(project, service, modes, name in one_shots, selected, problems)
        for name, service in selected.items()
    }
    if problems:
        raise ConfigError(problems)
    order = graph.layers({n: [d for d in s.depends_on if d in selected] for n, s in selected.items()})
    return StackPlan(
        project.name,
        networks,
        tuple(b for b in secrets if _used(b.key, selected, "secrets")),
        tuple(b for b in configs if _used(b.key, selected, "configs")),
        exported,
        tuple(tuple(layer) for layer in order),
        modes,
        tuple(warning for service in selected.values() for warning in carried.warnings(service)),
    )


def _graph(project: Project) -> dict[str, list[str]]:
    return {n: [d for d in s.depends_on if d in project.services] for n, s in project.services.items()}


def _full(project: Project, name: str) -> str:
    return f"{project.name}_{name}"


def _networks_of(service: Service) -> list[str]:
    if service.spec.get("network_mode") == "none":
        return []
    networks = service.spec.get("networks")
    return list(networks) if networks else ["default"]


def _used(key: str, services: Mapping[str, Service], kind: str) -> bool:
    return any(key == _ref_source(r) for s in services.values() for r in s.spec.get(kind) or ())


def _ref_source(ref: Any) -> str:
    return str(ref.get("source")) if isinstance(ref, dict) else str(ref)


def _blobs(project: Project, kind: str, problems: list[Problem]) -> list[Blob]:
    found: list[Blob] = []
    for key, spec in (project.spec.get(kind) or {}).items():
        spec = spec or {}
        data: bytes | None = None
        if "content" in spec:
            data = str(spec["content"]).encode()
        elif "environment" in spec:
            value = project.variables.get(str(spec["environment"]))
            data = value.encode() if value is not None else None
        elif "file" in spec:
            path = Path(str(spec["file"]))
            path = path if path.is_absolute() else project.working_dir / path
            try:
                data = path.read_bytes()
            except OSError as exc:
                problems.append(Problem(f"cannot read {path}: {exc.strerror}", key=f"{kind}.{key}.file"))
                continue
        if data is None:
            problems.append(
                Problem(
                    f"{kind[:-1]} {key!r} has no content for a cluster",
                    file=project.files[0],
                    key=f"{kind}.{key}",
                    fix="give it a file, environment or content",
                )
            )
            continue
        digest = hashlib.sha256(data).hexdigest()[:10]
        found.append(Blob(key, f"{project.name}_{key}-{digest}", data))
    return found


def _file_refs(service: Service, kind: str) -> tuple[FileRef, ...]:
    refs = []
    for ref in service.spec.get(kind) or ():
        ref = ref if isinstance(ref, dict) else {"source": ref}
        source = str(ref["source"])
        default = f"/run/secrets/{source}" if kind == "secrets" else f"/{source}"
        target = str(ref.get("target") or default)
        if kind == "secrets" and not target.startswith("/"):
            target = f"/run/secrets/{target}"
        mode = ref.get("mode", 0o444)
        bits = int(mode, 8) if isinstance(mode, str) else int(mode)
        refs.append(FileRef(source, target, str(ref.get("uid", "0")), str(ref.get("gid", "0")), bits))
    return tuple(refs)


def _service(
    project: Project,
    service: Service,
    modes: Modes,
    one_shot: bool,
    selected: Mapping[str, Service],
    problems: list[Problem],
) -> SwarmService:
    spec = service.spec
    deploy: dict[str, Any] = spec.get("deploy") or {}
    where = f"services.{service.name}"
    container = taskspec.container(project, service)
    mounts: list[dict[str, Any]] = container["mounts"]
    written = [m["Source"] for m in mounts if m["Type"] == "volume" and not m.get("ReadOnly")]

    ports = []
    for port in spec.get("ports") or ():
        publish = str(port.get("mode") or modes.publish)
        ports.append(
            {
                "Protocol": str(port.get("protocol") or "tcp"),
                "TargetPort": int(port["target"]),
                "PublishedPort": int(port.get("published") or port["target"]),
                "PublishMode": publish,
            }
        )
    endpoint_mode = str(deploy.get("endpoint_mode") or modes.endpoint)
    if endpoint_mode == "dnsrr" and any(p["PublishMode"] == "ingress" for p in ports):
        problems.append(
            Problem(
                f"service {service.name!r} publishes ingress ports with endpoint_mode dnsrr, which Swarm refuses",
                file=project.files[0],
                key=f"{where}.ports",
                fix="publish them with `mode: host`, or use endpoint_mode vip (needs IPVS on the nodes)",
            )
        )
    host_ports = any(p["PublishMode"] == "host" for p in ports)

    mode: Mode = _long_running_mode(service, modes)
    if one_shot:
        readers = [
            s
            for s in selected.values()
            if s.name != service.name
            and _long_running_mode(s, modes) == "global"
            and any(isinstance(m, dict) and m.get("source") in _sources(spec) for m in s.spec.get("volumes") or ())
        ]
        mode = "global-job" if readers else "replicated-job"
    replicas = None if mode.startswith("global") else int(deploy.get("replicas", 1))

    pinned: tuple[str, ...] = ()
    if mode == "replicated" and written:
        pinned = tuple(written)
    placement = deploy.get("placement") or {}
    constraints = tuple(str(c) for c in placement.get("constraints") or ())
    constraints += tuple(f"node.labels.{PINNED}.{volume}==true" for volume in pinned)

    healthchecked = service.healthcheck is not None
    # two tasks side by side only where they share nothing that breaks: no host port, no volume written (a
    # database's second server on the same files)
    start_first = healthchecked and not host_ports and not written
    update: dict[str, Any] | None = taskspec.update(deploy.get("update_config"), start_first)
    rollback: dict[str, Any] | None = taskspec.update(deploy.get("rollback_config"), start_first, rollback=True)
    if mode.endswith("-job"):
        update = rollback = None

    attached: Mapping[str, Any] = spec["networks"] if isinstance(spec.get("networks"), Mapping) else {}
    networks = tuple(
        (
            _full(project, n),
            tuple(dict.fromkeys([service.name, *map(str, (attached.get(n) or {}).get("aliases") or ())])),
        )
        for n in _networks_of(service)
    )
    preferences = tuple(
        (strategy, str(descriptor))
        for preference in placement.get("preferences") or ()
        for strategy, descriptor in dict(preference).items()
    )
    max_replicas = placement.get("max_replicas_per_node")
    return SwarmService(
        service=service.name,
        name=_full(project, service.name),
        mode=mode,
        replicas=replicas,
        image=str(spec.get("image") or f"{project.name}-{service.name}"),
        container=container,
        container_fields=taskspec.extra(spec),
        labels=taskspec.key_values(deploy.get("labels")),
        log_driver=taskspec.log_driver(spec),
        secrets=_file_refs(service, "secrets"),
        configs=_file_refs(service, "configs"),
        resources=taskspec.resources(deploy.get("resources") or {}, spec),
        restart_policy=taskspec.restart(deploy.get("restart_policy"), mode, service),
        constraints=constraints,
        preferences=preferences,
        max_replicas=int(max_replicas) if max_replicas is not None else None,
        pinned_volumes=pinned,
        networks=networks,
        endpoint={"Mode": endpoint_mode, "Ports": ports} if ports else {"Mode": endpoint_mode},
        update_config=update,
        rollback_config=rollback,
        depends_on={d: dep.condition for d, dep in service.depends_on.items() if d in selected},
        healthchecked=healthchecked,
    )


def _long_running_mode(service: Service, modes: Modes) -> Mode:
    """``deploy.mode``; without one, a service that publishes host-mode ports runs on every node."""
    deploy = service.spec.get("deploy") or {}
    if "mode" in deploy or "replicas" in deploy:
        return "global" if deploy.get("mode") == "global" else "replicated"
    ports = service.spec.get("ports") or ()
    return "global" if any(str(p.get("mode") or modes.publish) == "host" for p in ports) else "replicated"


def _sources(spec: Mapping[str, Any]) -> set[str]:
    return {
        str(v.get("source"))
        for v in spec.get("volumes") or ()
        if isinstance(v, dict) and v.get("type", "volume") == "volume"
    }
