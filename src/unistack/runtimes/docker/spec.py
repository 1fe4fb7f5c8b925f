"""A Compose service as Docker container-create arguments: pure, no engine, no files.

Owns the translation of one service's long-syntax mapping into the keyword arguments of
``DockerClient.containers.create`` (plus the networks to connect before start and the host folders its bind
mounts need), the container's labels and the config hash that says when to recreate it: each key handed to its
translator (the networks and ports to ``spec_networks``, what it mounts to ``spec_mounts``; the rest, the keys
that map one to one, the command, limits, devices, logging, here), the whole run checked for refusals. A key it
cannot carry out is refused (``NotSupported`` naming the service and the key), never ignored; keys that only the
engine or the image build read are listed in ``ENGINE_KEYS``. Names and resource labels come from ``resources``.
Never talks to Docker.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from docker.types import LogConfig, Ulimit

from unistack.config.formats import parse_bytes
from unistack.config.model import Project, Service
from unistack.errors import NotSupported, Problem
from unistack.runtimes.docker import spec_mounts, spec_networks
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
    labels_mapping,
    mapping,
)
from unistack.runtimes.docker.spec_state import Translation

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
class ContainerPlan:
    """Everything needed to create one service's container, and the hash that says when to recreate it."""

    name: str
    image: str
    create: dict[str, Any]  # keyword arguments of DockerClient.containers.create (labels included)
    attachments: tuple[
        spec_networks.Attachment, ...
    ]  # the first is given at create; the others are connected before start
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


class _Translation(Translation):
    """Walks one service's keys; fills ``create`` or records a refusal (key, sentence) for each."""

    def run(self) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "command": lambda v: self.put("command", split_command(v)),
            "entrypoint": self.entrypoint,
            "labels": lambda v: self.put("labels", labels_mapping(v)),
            "ports": lambda v: None,  # from Service.ports, below
            "networks": lambda v: None,  # with network_mode, below
            "network_mode": lambda v: None,
            "volumes": lambda v: spec_mounts.volumes(self, v),
            "tmpfs": lambda v: spec_mounts.tmpfs(self, v),
            "extra_hosts": lambda v: spec_networks.extra_hosts(self, v),
            "ulimits": self.ulimits,
            "sysctls": lambda v: self.put("sysctls", mapping(v)),
            "devices": self.devices,
            "deploy": self.deploy,
            "logging": self.logging,
            "secrets": lambda v: spec_mounts.files(self, "secrets", v, "/run/secrets/"),
            "configs": lambda v: spec_mounts.files(self, "configs", v, "/"),
            "volumes_from": lambda v: spec_mounts.volumes_from(self, v),
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
        spec_networks.ports_and_networks(self)

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

    def scale(self, value: Any) -> None:
        if int(value) != 1:
            self.refuse("scale", "other than 1 is not supported (one container per service)")

    def pull_policy(self, value: Any) -> None:
        if str(value) not in _NO_PULL:
            self.refuse("pull_policy", f"{value!r} asks to pull, and unistack never pulls images", "use never or build")


def _nano_cpus(value: Any) -> int:
    return round(float(value) * 1e9)


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
