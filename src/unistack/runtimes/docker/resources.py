"""The instance's Docker resources outside its containers: Compose's names and labels, networks and volumes.

Owns the names (``<project>-<service>-1``, ``<project>_<network>``, ``<project>_<volume>``, ``external``/``name``
honoured), the labels every resource carries (``com.docker.compose.*`` plus ``dev.unistack.state_dir``, which
tells one instance's resources from another's), which networks and named volumes a project uses, creating them
(``prepare``: ``internal``, ``driver``, ``ipam``, ``external`` ones must exist) and removing them with the
containers (``down``). The plans are pure; ``prepare_resources`` and ``remove_resources`` block (SDK calls).
Never starts or stops a container.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from unistack.config.model import Project, Service
from unistack.config.updates import update_order
from unistack.errors import RuntimeFailure
from unistack.runtimes.docker.engine import explain

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
HASH_LABEL = "com.docker.compose.config-hash"
IMAGE_LABEL = "com.docker.compose.image"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"
STATE_DIR_LABEL = "dev.unistack.state_dir"
SUBNET_LABEL = "dev.unistack.subnet"  # "fixed": the network's subnet is in its IPAM config (see pin_subnet)


# ----------------------------------------------------------------- names and labels


def container_name(project: Project, service: Service) -> str:
    return str(service.spec.get("container_name") or f"{project.name}-{service.name}-1")


def image_name(project: Project, service: Service) -> str:
    """The image a service runs: ``image``, or Compose's name for a built one (``<project>-<service>``)."""
    return str(service.spec.get("image") or f"{project.name}-{service.name}")


def is_external(definition: Mapping[str, Any]) -> bool:
    external = definition.get("external")
    return bool(external) and external is not False


def network_name(project: Project, key: str) -> str:
    definition = project.networks.get(key) or {}
    if definition.get("name"):
        return str(definition["name"])
    return key if is_external(definition) else f"{project.name}_{key}"


def volume_name(project: Project, key: str) -> str:
    definition = project.volumes.get(key) or {}
    if definition.get("name"):
        return str(definition["name"])
    return key if is_external(definition) else f"{project.name}_{key}"


def instance_labels(project_name: str, state_dir: Path) -> dict[str, str]:
    """The labels every resource of one instance carries; ``label_filters`` finds them again."""
    return {PROJECT_LABEL: project_name, STATE_DIR_LABEL: str(state_dir)}


def label_filters(labels: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in labels.items()]


# ----------------------------------------------------------------- networks and volumes


@dataclass(frozen=True)
class ResourcePlan:
    """One network or named volume of the project: its name, and how to create it (unless external)."""

    key: str
    name: str
    external: bool
    create: dict[str, Any] = field(default_factory=dict)
    pin_subnet: bool = False  # create it with the subnet Docker picks written into its IPAM config


def used_networks(project: Project) -> list[str]:
    """Network keys that some service joins (``default`` for services that list none), in first-use order."""
    keys: dict[str, None] = {}
    for service in project.services.values():
        if service.spec.get("network_mode") is not None:
            continue
        keys.update(dict.fromkeys(service_networks(service) or {"default": None}))
    return list(keys)


def used_volumes(project: Project) -> list[str]:
    keys: dict[str, None] = {}
    for service in project.services.values():
        for entry in service.spec.get("volumes") or []:
            if entry.get("type", "volume") == "volume" and entry.get("source") in project.volumes:
                keys[str(entry["source"])] = None
    return list(keys)


def _resource_labels(project: Project, definition: dict[str, Any], kind_label: str, key: str) -> dict[str, str]:
    """The user's labels, then the instance's, then Compose's network/volume label naming the resource."""
    labels = {**labels_mapping(definition.get("labels")), **instance_labels(project.name, project.state_dir)}
    labels[kind_label] = key
    return labels


def _start_first_networks(project: Project) -> set[str]:
    """Network keys a start-first service joins: its update's second container takes a fixed address there."""
    keys: set[str] = set()
    for service in project.services.values():
        if update_order(service) == "start-first" and service.spec.get("network_mode") is None:
            keys |= set(service_networks(service) or {"default": None})
    return keys


def network_plans(project: Project) -> list[ResourcePlan]:
    plans = []
    start_first = _start_first_networks(project)
    for key in used_networks(project):
        definition = project.networks.get(key) or {}
        name = network_name(project, key)
        if is_external(definition):
            plans.append(ResourcePlan(key, name, True))
            continue
        labels = _resource_labels(project, definition, NETWORK_LABEL, key)
        create: dict[str, Any] = {
            "name": name,
            "driver": str(definition.get("driver") or "bridge"),
            "options": {str(k): str(v) for k, v in (definition.get("driver_opts") or {}).items()} or None,
            "internal": bool(definition.get("internal", False)),
            "labels": labels,
            "enable_ipv6": bool(definition.get("enable_ipv6", False)),
            "attachable": bool(definition.get("attachable", False)),
        }
        pin = False
        if definition.get("ipam"):
            create["ipam"] = _ipam(definition["ipam"])
            if any(pool.get("Subnet") for pool in create["ipam"]["Config"]):
                labels[SUBNET_LABEL] = "fixed"
        elif key in start_first and create["driver"] == "bridge" and not create["enable_ipv6"]:
            labels[SUBNET_LABEL] = "fixed"
            pin = True
        plans.append(ResourcePlan(key, name, False, create, pin))
    return plans


def volume_plans(project: Project) -> list[ResourcePlan]:
    plans = []
    for key in used_volumes(project):
        definition = project.volumes.get(key) or {}
        name = volume_name(project, key)
        if is_external(definition):
            plans.append(ResourcePlan(key, name, True))
            continue
        labels = _resource_labels(project, definition, VOLUME_LABEL, key)
        create = {
            "name": name,
            "driver": str(definition.get("driver") or "local"),
            "driver_opts": {str(k): str(v) for k, v in (definition.get("driver_opts") or {}).items()} or None,
            "labels": labels,
        }
        plans.append(ResourcePlan(key, name, False, create))
    return plans


def _ipam(ipam: Mapping[str, Any]) -> dict[str, Any]:
    """Compose ``ipam`` in the Engine API's shape."""
    pools = [
        {
            key: value
            for key, value in {
                "Subnet": pool.get("subnet"),
                "IPRange": pool.get("ip_range"),
                "Gateway": pool.get("gateway"),
                "AuxiliaryAddresses": pool.get("aux_addresses"),
            }.items()
            if value
        }
        for pool in ipam.get("config") or []
    ]
    return {"Driver": ipam.get("driver") or "default", "Config": pools, "Options": ipam.get("options") or {}}


def service_networks(service: Service) -> dict[str, Any]:
    networks = service.spec.get("networks") or {}
    return dict(networks) if isinstance(networks, Mapping) else {str(n): None for n in networks}


def labels_mapping(value: Any) -> dict[str, str]:
    """Compose ``labels`` (a mapping or a list of ``KEY=VALUE``; may be absent)."""
    return mapping(value) if value else {}


def mapping(value: Any) -> dict[str, str]:
    """A Compose mapping that may be written as a list of ``KEY=VALUE``."""
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    pairs = (str(item).partition("=") for item in value)
    return {key: val for key, _, val in pairs}


# ----------------------------------------------------------------- creating and removing


def prepare_resources(client: docker.DockerClient, project: Project) -> None:
    """Create the networks and named volumes the project uses (existing ones of this project are kept)."""
    for plan in network_plans(project):
        _ensure_network(client, project, plan)
    for plan in volume_plans(project):
        _ensure_volume(client, plan)


def _ensure_network(client: docker.DockerClient, project: Project, plan: ResourcePlan) -> None:
    found = [n for n in client.api.networks(names=[plan.name]) if n.get("Name") == plan.name]
    if plan.external:
        if not found:
            raise RuntimeFailure(
                f"network {plan.name!r} is declared external but does not exist; "
                f"create it (docker network create {plan.name}) or remove 'external'"
            )
        return
    if found:
        existing = found[0]
        owner = (existing.get("Labels") or {}).get(PROJECT_LABEL)
        if owner != project.name:
            raise RuntimeFailure(
                f"a network named {plan.name!r} exists but belongs to "
                f"{'project ' + repr(owner) if owner else 'no Compose project'}; remove it "
                f"(docker network rm {plan.name}), mark it external, or use another project name (-p)"
            )
        same = (
            bool(existing.get("Internal")) == plan.create["internal"]
            and existing.get("Driver") == plan.create["driver"]
        )
        if same:
            return
        try:
            client.api.remove_network(existing["Id"])
        except docker.errors.APIError as exc:
            raise RuntimeFailure(
                f"network {plan.name!r} was created with other settings (internal, driver) and is still in use "
                f"({explain(exc)}); run `unistack down` and then `up` again"
            ) from exc
    try:
        if plan.pin_subnet:
            pin_subnet(client, plan)
        else:
            client.networks.create(**plan.create)
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # created meanwhile by a racing `up`: fine
            raise


def pin_subnet(client: docker.DockerClient, plan: ResourcePlan, attempts: int = 5) -> None:
    """Create the network with the subnet Docker picks from its pools written into its IPAM config, as if the
    file had said ``ipam.config: [{subnet: ...}]``: only such a network lets a container ask for an address
    (the Engine refuses one on a network with a subnet of its own choosing), which a start-first update's second
    container needs (see beside.py). Docker picks on a throwaway network of the same driver, removed at once; a
    pool taken meanwhile by another network (Docker refuses the overlap) is picked again."""
    probe_args = {"driver": plan.create["driver"], "labels": plan.create["labels"]}
    for attempt in range(attempts):
        probe = client.api.create_network(f"{plan.name}-subnet-{uuid.uuid4().hex[:8]}", **probe_args)
        try:
            pools = client.api.inspect_network(probe["Id"])["IPAM"]["Config"] or []
        finally:
            client.api.remove_network(probe["Id"])
        config = [{k: p[k] for k in ("Subnet", "Gateway") if p.get(k)} for p in pools if p.get("Subnet")]
        ipam: Any = {"Driver": "default", "Config": config, "Options": {}}  # the Engine API's shape, as _ipam
        try:
            client.networks.create(**plan.create, ipam=ipam)
            return
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc).lower() or attempt == attempts - 1:
                raise


def _ensure_volume(client: docker.DockerClient, plan: ResourcePlan) -> None:
    try:
        client.api.inspect_volume(plan.name)
        return
    except docker.errors.NotFound:
        if plan.external:
            raise RuntimeFailure(
                f"volume {plan.name!r} is declared external but does not exist; "
                f"create it (docker volume create {plan.name}) or remove 'external'"
            ) from None
    client.volumes.create(**plan.create)


def remove_resources(client: docker.DockerClient, project: Project, remove_volumes: bool) -> list[str]:
    """Like ``docker compose down``: the instance's containers, networks and (when asked) volumes; external ones
    are never labelled as ours, so they stay. A container's anonymous volumes go with it, ``-v`` or not (Compose
    leaves them dangling, one more at every ``up``/``down``: nothing can use them again). Returns what could not
    be removed."""
    api = client.api
    labels = {"label": label_filters(instance_labels(project.name, project.state_dir))}
    problems = []
    graces = {name: service.stop_grace_period for name, service in project.services.items()}
    for row in api.containers(all=True, filters=labels):
        if row.get("State") == "running":  # not stopped by the engine (its stop failed, or it was never tracked):
            # stopped as `docker compose down` stops it, its stop_signal then SIGKILL after its grace period, never
            # killed outright by the removal (a database killed so starts with a recovery)
            service = (row.get("Labels") or {}).get(SERVICE_LABEL, "")
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                api.stop(row["Id"], timeout=max(1, round(graces.get(service, 10.0))))
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(row["Id"], force=True, v=True)  # v: its anonymous volumes, never named ones
    for row in api.networks(filters=labels):
        try:
            api.remove_network(row["Id"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            problems.append(f"cannot remove network {row.get('Name')!r}: {explain(exc)}")
    if remove_volumes:
        for row in api.volumes(filters=labels).get("Volumes") or []:
            try:
                api.remove_volume(row["Name"])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                problems.append(f"cannot remove volume {row['Name']!r}: {explain(exc)}")
    return problems
