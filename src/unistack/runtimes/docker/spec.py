"""A Compose service as Docker container-create arguments: pure, no engine, no files.

Owns the translation of one service's long-syntax mapping into the keyword arguments of
``DockerClient.containers.create`` (plus the networks to connect before start and the host folders its bind
mounts need), the container's labels and the config hash that says when to recreate it. A key it cannot carry
out is refused (``NotSupported`` naming the service and the key), never ignored; keys that only the engine or
the image build read are listed in ``ENGINE_KEYS``. Names and resource labels come from ``resources``.
Never talks to Docker.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.types import LogConfig, Mount, Ulimit

from unistack.config.model import Project, Service
from unistack.config.normalize import parse_bytes
from unistack.errors import NotSupported, Problem
from unistack.runtimes.docker.resources import (
    CONFIG_FILES_LABEL,
    HASH_LABEL,
    NUMBER_LABEL,
    ONEOFF_LABEL,
    SERVICE_LABEL,
    WORKING_DIR_LABEL,
    container_name,
    image_name,
    instance_labels,
    is_external,
    labels_mapping,
    mapping,
    network_name,
    service_networks,
    volume_name,
)

# Read by the engine (health, restarts, order, stop grace) or by setup (build); no effect on the container.
ENGINE_KEYS = frozenset(
    ["build", "depends_on", "healthcheck", "restart", "stop_grace_period", "profiles", "env_file", "environment"]
)
# Compose keys that change nothing about one container on one machine (documentation, tooling, swarm).
NO_EFFECT_KEYS = frozenset(["attach", "develop", "expose", "extends", "image", "container_name", "pull_refresh_after"])
_SWARM_DEPLOY_KEYS = frozenset(["mode", "labels", "placement", "update_config", "rollback_config", "endpoint_mode"])
_NO_PULL = frozenset(["never", "missing", "if_not_present", "build"])


# ----------------------------------------------------------------- containers


@dataclass(frozen=True)
class Attachment:
    """One network a container joins, with its DNS aliases (the service name first)."""

    network: str
    aliases: tuple[str, ...]
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: tuple[str, ...] = ()

    def endpoint(self) -> dict[str, Any]:
        """The Engine API's EndpointSettings for ``networking_config``."""
        config: dict[str, Any] = {"Aliases": list(self.aliases)}
        ipam = {
            key: value
            for key, value in {
                "IPv4Address": self.ipv4_address,
                "IPv6Address": self.ipv6_address,
                "LinkLocalIPs": list(self.link_local_ips),
            }.items()
            if value
        }
        if ipam:
            config["IPAMConfig"] = ipam
        return config


@dataclass(frozen=True)
class ContainerPlan:
    """Everything needed to create one service's container, and the hash that says when to recreate it."""

    name: str
    image: str
    create: dict[str, Any]  # keyword arguments of DockerClient.containers.create (labels included)
    attachments: tuple[Attachment, ...]  # the first is given at create; the others are connected before start
    host_paths: tuple[str, ...]  # bind-mount sources to create on the host when missing
    config_hash: str


def container_plan(project: Project, service: Service) -> ContainerPlan:
    """The container for ``service``; raises NotSupported listing every key the Docker runtime cannot carry out."""
    translation = _Translation(project, service)
    translation.run()
    if translation.refusals:
        raise NotSupported(
            "; ".join(message for _, message in translation.refusals)
            + " (the docker runtime refuses what it cannot carry out instead of ignoring it)"
        )
    create = translation.create
    attachments = tuple(translation.attachments)
    if attachments:
        create["network"] = attachments[0].network
        create["networking_config"] = {attachments[0].network: attachments[0].endpoint()}
    user_labels = create.pop("labels", {})
    hashed = {"create": create, "labels": user_labels, "attachments": [a.__dict__ for a in attachments]}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()
    create["labels"] = {
        **user_labels,
        **instance_labels(project.name, project.state_dir),
        SERVICE_LABEL: service.name,
        NUMBER_LABEL: "1",
        ONEOFF_LABEL: "False",
        WORKING_DIR_LABEL: str(project.working_dir),
        CONFIG_FILES_LABEL: ",".join(str(f) for f in project.files),
        HASH_LABEL: digest,
    }
    return ContainerPlan(
        name=create["name"],
        image=create["image"],
        create=create,
        attachments=attachments,
        host_paths=tuple(translation.host_paths),
        config_hash=digest,
    )


def check_for_docker_runtime(project: Project) -> list[Problem]:
    """Problems that stop this project from running on Docker: one per refused key, all at once."""
    file = project.files[0] if project.files else None
    problems = []
    for name, service in project.services.items():
        translation = _Translation(project, service)
        translation.run()
        for key, message in translation.refusals:
            problems.append(Problem(message, file=file, key=f"services.{name}.{key}"))
    from unistack.config.manifests import runtime_problems

    problems.extend(runtime_problems(project, containers=True))
    return problems


def split_command(value: Any) -> list[str]:
    """``command``/``entrypoint``: a list is argv; a string is split as a shell would (no shell runs it)."""
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


class _Translation:
    """Walks one service's keys; fills ``create`` or records a refusal (key, sentence) for each."""

    def __init__(self, project: Project, service: Service) -> None:
        self.project, self.service = project, service
        self.spec = service.spec
        self.create: dict[str, Any] = {}
        self.attachments: list[Attachment] = []
        self.host_paths: list[str] = []
        self.refusals: list[tuple[str, str]] = []

    def refuse(self, key: str, why: str, fix: str = "remove it or use --runtime process") -> None:
        self.refusals.append((key, f"service {self.service.name!r}: {key} {why}; {fix}"))

    def run(self) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "command": lambda v: self.put("command", split_command(v)),
            "entrypoint": self.entrypoint,
            "labels": lambda v: self.put("labels", labels_mapping(v)),
            "ports": lambda v: None,  # from Service.ports, below
            "networks": lambda v: None,  # with network_mode, below
            "network_mode": lambda v: None,
            "volumes": self.volumes,
            "tmpfs": self.tmpfs,
            "extra_hosts": self.extra_hosts,
            "ulimits": self.ulimits,
            "sysctls": lambda v: self.put("sysctls", mapping(v)),
            "devices": self.devices,
            "deploy": self.deploy,
            "logging": self.logging,
            "secrets": lambda v: self.files("secrets", v, "/run/secrets/"),
            "configs": lambda v: self.files("configs", v, "/"),
            "volumes_from": self.volumes_from,
            "scale": self.scale,
            "pull_policy": self.pull_policy,
            "ipc": lambda v: self.put("ipc_mode", self.service_reference(str(v))),
            "cpus": lambda v: self.put("nano_cpus", _nano_cpus(v)),
            **{key: self.simple(kwarg, convert) for key, (kwarg, convert) in _SIMPLE.items()},
        }
        for key, value in self.spec.items():
            if key.startswith("x-") or key in ENGINE_KEYS or key in NO_EFFECT_KEYS:
                continue
            handler = handlers.get(key)
            if handler is None:
                self.refuse(key, "is not supported by the docker runtime")
                continue
            try:
                handler(value)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.refuse(key, f"has a value the docker runtime cannot use ({exc})", "fix the value")
        self.base()
        self.ports_and_networks()

    def put(self, kwarg: str, value: Any) -> None:
        self.create[kwarg] = value

    def simple(self, kwarg: str, convert: Callable[[Any], Any]) -> Callable[[Any], None]:
        return lambda value: self.put(kwarg, convert(value))

    def base(self) -> None:
        if not self.spec.get("image") and not self.spec.get("build"):
            self.refuse("image", "is missing (and there is no build)", "give the service an image or a build")
        self.create["name"] = container_name(self.project, self.service)
        self.create["image"] = image_name(self.project, self.service)
        self.create["environment"] = dict(self.service.environment)
        self.create["healthcheck"] = {"test": ["NONE"]}  # the engine runs the probes itself
        self.create["detach"] = True

    def entrypoint(self, value: Any) -> None:
        argv = split_command(value)
        self.create["entrypoint"] = argv or [""]  # an empty entrypoint clears the image's, as `--entrypoint ""`

    def service_reference(self, mode: str) -> str:
        """``service:NAME`` (network_mode, ipc) -> ``container:<that service's container>``."""
        if mode.startswith("service:"):
            other = self.project.services.get(mode.partition(":")[2])
            if other is None:
                raise ValueError(f"{mode!r} names no service of this project")
            return f"container:{container_name(self.project, other)}"
        return mode

    def ports_and_networks(self) -> None:
        mode = self.spec.get("network_mode")
        networks = service_networks(self.service)
        if mode is not None:
            if networks:
                self.refuse("network_mode", "cannot be combined with networks", "use one of them")
            if self.service.ports and mode != "bridge":
                self.refuse("ports", f"cannot be published with network_mode {mode!r}", "remove them")
            try:
                self.create["network_mode"] = self.service_reference(str(mode))
            except ValueError as exc:
                self.refuse("network_mode", str(exc), "name a service of this project")
        else:
            self.networks(networks or {"default": None})
        bindings: dict[str, list[Any]] = {}
        for port in self.service.ports:
            binding: Any = port.published
            if port.host_ip:
                binding = (port.host_ip, port.published) if port.published is not None else (port.host_ip,)
            bindings.setdefault(f"{port.target}/{port.protocol}", []).append(binding)
        if bindings:
            self.create["ports"] = bindings

    def networks(self, networks: dict[str, Any]) -> None:
        def priority(item: tuple[str, Any]) -> tuple[int, str]:
            return (-int((item[1] or {}).get("priority", 0)), item[0])

        for key, options in sorted(networks.items(), key=priority):
            options = options or {}
            if key != "default" and key not in self.project.networks:
                self.refuse(f"networks.{key}", "is not declared under the top-level networks", "declare it there")
                continue
            for unsupported in sorted(set(options) - {"aliases", "ipv4_address", "ipv6_address", "link_local_ips"}):
                if unsupported not in ("priority", "gw_priority"):
                    self.refuse(f"networks.{key}.{unsupported}", "is not supported by the docker runtime")
            aliases = [self.service.name, *(str(a) for a in options.get("aliases") or [])]
            self.attachments.append(
                Attachment(
                    network=network_name(self.project, key),
                    aliases=tuple(dict.fromkeys(aliases)),
                    ipv4_address=options.get("ipv4_address"),
                    ipv6_address=options.get("ipv6_address"),
                    link_local_ips=tuple(str(ip) for ip in options.get("link_local_ips") or []),
                )
            )

    def volumes(self, entries: list[dict[str, Any]]) -> None:
        mounts = self.create.setdefault("mounts", [])
        for index, entry in enumerate(entries):
            key = f"volumes[{index}]"
            kind = entry.get("type", "volume")
            target, source = str(entry["target"]), entry.get("source")
            read_only = bool(entry.get("read_only", False))
            if kind == "volume":
                options = entry.get("volume") or {}
                if "subpath" in options:
                    self.refuse(f"{key}.volume.subpath", "needs a newer Docker Engine API than unistack uses")
                if source is None:  # anonymous: labelled, so `down -v` finds it
                    labels = instance_labels(self.project.name, self.project.state_dir)
                    mounts.append(
                        Mount(target, None, "volume", read_only, no_copy=bool(options.get("nocopy")), labels=labels)
                    )
                elif str(source) not in self.project.volumes:
                    self.refuse(
                        key,
                        f"uses volume {source!r}, which is not declared under the top-level volumes",
                        "declare it there",
                    )
                else:
                    name = volume_name(self.project, str(source))
                    mounts.append(Mount(target, name, "volume", read_only, no_copy=bool(options.get("nocopy"))))
            elif kind == "bind":
                options = entry.get("bind") or {}
                if options.get("selinux"):
                    self.refuse(f"{key}.bind.selinux", "is not supported by the docker runtime")
                if options.get("create_host_path", True) is not False:
                    self.host_paths.append(str(source))
                mounts.append(Mount(target, str(source), "bind", read_only, propagation=options.get("propagation")))
            elif kind == "tmpfs":
                options = entry.get("tmpfs") or {}
                size = parse_bytes(options["size"]) if options.get("size") is not None else None
                mounts.append(
                    Mount(target, None, "tmpfs", read_only, tmpfs_size=size, tmpfs_mode=_mode(options.get("mode")))
                )
            else:
                self.refuse(
                    f"{key}.type", f"{kind!r} is not supported by the docker runtime (use volume, bind or tmpfs)"
                )

    def tmpfs(self, value: Any) -> None:
        entries = [value] if isinstance(value, str) else list(value)
        self.create["tmpfs"] = {path: options for path, _, options in (str(e).partition(":") for e in entries)}

    def extra_hosts(self, value: Any) -> None:
        pairs: list[tuple[str, str]] = []
        if isinstance(value, Mapping):
            for host, ips in value.items():
                pairs.extend((str(host), str(ip)) for ip in (ips if isinstance(ips, list) else [ips]))
        else:
            for item in value:
                text = str(item)
                host, sep, ip = text.partition("=")
                if not sep:
                    host, _, ip = text.partition(":")
                pairs.append((host, ip))
        self.create["extra_hosts"] = [f"{host}:{ip}" for host, ip in pairs]

    def ulimits(self, value: Mapping[str, Any]) -> None:
        limits = []
        for name, limit in value.items():
            if isinstance(limit, Mapping):
                limits.append(Ulimit(name=str(name), soft=int(limit["soft"]), hard=int(limit["hard"])))
            else:
                limits.append(Ulimit(name=str(name), soft=int(limit), hard=int(limit)))
        self.create["ulimits"] = limits

    def devices(self, value: list[Any]) -> None:
        devices = []
        for item in value:
            if isinstance(item, Mapping):
                source = str(item["source"])
                devices.append(f"{source}:{item.get('target', source)}:{item.get('permissions', 'rwm')}")
            else:
                devices.append(str(item))
        self.create["devices"] = devices

    def deploy(self, value: Mapping[str, Any]) -> None:
        for key in value:
            if key == "replicas" and int(value[key]) != 1:
                self.refuse("deploy.replicas", "other than 1 is not supported (one container per service)")
            elif key not in {"replicas", "resources", "restart_policy", *_SWARM_DEPLOY_KEYS}:
                self.refuse(f"deploy.{key}", "is not supported by the docker runtime")
        resources = value.get("resources") or {}
        for key in set(resources) - {"limits", "reservations"}:
            self.refuse(f"deploy.resources.{key}", "is not supported by the docker runtime")
        limits = resources.get("limits") or {}
        for key, limit in limits.items():
            if key == "cpus":
                self.create["nano_cpus"] = _nano_cpus(limit)
            elif key == "memory":
                self.create["mem_limit"] = parse_bytes(limit)
            elif key == "pids":
                self.create["pids_limit"] = int(limit)
            else:
                self.refuse(f"deploy.resources.limits.{key}", "is not supported by the docker runtime")
        for key, reservation in (resources.get("reservations") or {}).items():
            if key == "memory":
                self.create["mem_reservation"] = parse_bytes(reservation)
            elif key != "cpus":  # a scheduling hint only; Compose does not apply it to a container either
                self.refuse(f"deploy.resources.reservations.{key}", "is not supported by the docker runtime")

    def logging(self, value: Mapping[str, Any]) -> None:
        options = {str(k): str(v) for k, v in (value.get("options") or {}).items()}
        self.create["log_config"] = LogConfig(type=str(value.get("driver") or "json-file"), config=options)

    def files(self, kind: str, value: list[Any], default_folder: str) -> None:
        """``secrets``/``configs`` backed by a file: mounted read-only, as Compose does without swarm."""
        definitions = self.project.spec.get(kind) or {}
        mounts = self.create.setdefault("mounts", [])
        for index, item in enumerate(value):
            entry = dict(item) if isinstance(item, Mapping) else {"source": str(item)}
            source = str(entry.get("source"))
            key = f"{kind}[{index}]"
            definition = definitions.get(source)
            if not isinstance(definition, Mapping):
                self.refuse(key, f"names {source!r}, which is not declared under the top-level {kind}", "declare it")
                continue
            if not definition.get("file") or is_external(definition):
                self.refuse(key, f"{source!r} is not backed by a file (only file: {kind} are supported)")
                continue
            for option in ("uid", "gid", "mode"):
                if option in entry:
                    self.refuse(f"{key}.{option}", "cannot be applied to a bind-mounted file (it keeps the host's)")
            target = str(entry.get("target") or source)
            if not target.startswith("/"):
                target = default_folder + target
            path = Path(str(definition["file"])).expanduser()
            host = path if path.is_absolute() else self.project.working_dir / path
            mounts.append(Mount(target, str(host), "bind", read_only=True))

    def volumes_from(self, value: list[Any]) -> None:
        sources = []
        for item in value:
            text = str(item)
            if text.startswith("container:"):
                sources.append(text.partition(":")[2])
                continue
            name, _, mode = text.partition(":")
            other = self.project.services.get(name)
            if other is None:
                raise ValueError(f"{name!r} is not a service of this project")
            reference = container_name(self.project, other)
            sources.append(f"{reference}:{mode}" if mode else reference)
        self.create["volumes_from"] = sources

    def scale(self, value: Any) -> None:
        if int(value) != 1:
            self.refuse("scale", "other than 1 is not supported (one container per service)")

    def pull_policy(self, value: Any) -> None:
        if str(value) not in _NO_PULL:
            self.refuse("pull_policy", f"{value!r} asks to pull, and unistack never pulls images", "use never or build")


def _nano_cpus(value: Any) -> int:
    return round(float(value) * 1e9)


def _mode(value: Any) -> int | None:
    if value is None:
        return None
    return int(value, 8) if isinstance(value, str) else int(value)


def _strings(value: Any) -> list[str]:
    return [str(value)] if isinstance(value, str | int) else [str(v) for v in value]


_SIMPLE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "hostname": ("hostname", str),
    "domainname": ("domainname", str),
    "working_dir": ("working_dir", str),
    "user": ("user", str),
    "stop_signal": ("stop_signal", str),
    "init": ("init", bool),
    "read_only": ("read_only", bool),
    "privileged": ("privileged", bool),
    "tty": ("tty", bool),
    "stdin_open": ("stdin_open", bool),
    "cap_add": ("cap_add", _strings),
    "cap_drop": ("cap_drop", _strings),
    "security_opt": ("security_opt", _strings),
    "group_add": ("group_add", _strings),
    "dns": ("dns", _strings),
    "dns_search": ("dns_search", _strings),
    "dns_opt": ("dns_opt", _strings),
    "pids_limit": ("pids_limit", int),
    "shm_size": ("shm_size", parse_bytes),
    "mem_limit": ("mem_limit", parse_bytes),
    "mem_reservation": ("mem_reservation", parse_bytes),
    "memswap_limit": ("memswap_limit", parse_bytes),
    "mem_swappiness": ("mem_swappiness", int),
    "cpu_shares": ("cpu_shares", int),
    "cpu_quota": ("cpu_quota", int),
    "cpu_period": ("cpu_period", int),
    "cpuset": ("cpuset_cpus", str),
    "oom_score_adj": ("oom_score_adj", int),
    "oom_kill_disable": ("oom_kill_disable", bool),
    "pid": ("pid_mode", str),
    "uts": ("uts_mode", str),
    "userns_mode": ("userns_mode", str),
    "cgroup_parent": ("cgroup_parent", str),
    "platform": ("platform", str),
    "runtime": ("runtime", str),
    "mac_address": ("mac_address", str),
    "storage_opt": ("storage_opt", mapping),
}
