"""One Swarm service's body as the Engine API receives it (pure): the task template (the container spec with its
secrets' and configs' references, resources, restart policy, placement, log driver, networks), the service's own
fields (name, labels, mode, endpoint, update and rollback configs), and the spec hash that ``deploy`` again and
``validate``'s drift compare.

The hash is of that body as canonical JSON, so it changes only when what would be sent changes (never when only
unistack's own record of a service does, as after an upgrade of unistack), and it is a label of the *service*,
not of the task template: Swarm makes new tasks only when the task template changes, so an update whose task
template is the same (a ``deploy.labels`` change, a new hash alone) restarts nothing.

Never talks to an engine, never decides the mapping (export.py) or when to apply it (driver.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from unistack.targets.swarm.taskspec import SERVICE_LABEL, STACK_LABEL

if TYPE_CHECKING:
    from unistack.targets.swarm.export import SwarmService

HASH_LABEL = "dev.unistack.spec-hash"
UNCOMPARED = (
    "Placement",  # Swarm keeps a task whose node still meets changed constraints
    "Runtime",  # the service reads back "container", its tasks none (Engine 20.10); unistack sends none
)


@dataclass(frozen=True)
class Body:
    task: dict[str, Any]  # the TaskTemplate
    arguments: dict[str, Any]  # create_service/update_service's keyword arguments, the labels with the hash
    hash: str


def body(
    service: SwarmService,
    image: str,
    blobs: Mapping[str, tuple[str, str]],
    deployed: Mapping[str, Any] | None = None,
) -> Body:
    """``service`` with the registry's ``image`` and its secrets and configs (``secrets:KEY`` -> (id, name)).

    ``deployed``: the service's spec as Swarm has it. A task template that an older unistack labelled with the
    hash keeps that label as it was (dropping it would change every task template once, so roll every service).
    """
    from docker import types

    labels = dict(service.container.get("labels", {}))
    legacy = (((deployed or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Labels") or {}
    if HASH_LABEL in legacy:
        labels[HASH_LABEL] = legacy[HASH_LABEL]
    container = types.ContainerSpec(
        image=image,
        secrets=[
            types.SecretReference(*blobs[f"secrets:{r.key}"], filename=r.target, uid=r.uid, gid=r.gid, mode=r.mode)
            for r in service.secrets
        ],
        configs=[
            types.ConfigReference(*blobs[f"configs:{r.key}"], filename=r.target, uid=r.uid, gid=r.gid, mode=r.mode)
            for r in service.configs
        ],
        **{**service.container, "labels": labels},
    )
    container.update(service.container_fields)
    placement = None
    if service.constraints or service.preferences or service.max_replicas is not None:
        placement = types.Placement(
            constraints=list(service.constraints) or None,
            preferences=list(service.preferences) or None,
            maxreplicas=service.max_replicas,
        )
    task = types.TaskTemplate(
        container,
        resources=cast(Any, service.resources or None),  # the Engine API's own shape (Pids too)
        restart_policy=cast(Any, service.restart_policy),
        placement=placement,
        log_driver=cast(Any, service.log_driver),
        networks=[types.NetworkAttachmentConfig(n, aliases=list(a)) for n, a in service.networks],
    )
    arguments: dict[str, Any] = {
        "name": service.name,
        "labels": {**service.labels, STACK_LABEL: service.name.split("_", 1)[0], SERVICE_LABEL: service.service},
        "mode": types.ServiceMode(service.mode, replicas=service.replicas),
        "endpoint_spec": service.endpoint,
        "update_config": service.update_config,
        "rollback_config": service.rollback_config,
    }
    digest = spec_hash(task, arguments)
    arguments["labels"][HASH_LABEL] = digest
    return Body(dict(task), arguments, digest)


def spec_hash(task: Mapping[str, Any], arguments: Mapping[str, Any]) -> str:
    """The canonical JSON of what would be sent (the SDK's types are dicts), hashed."""
    text = json.dumps({"TaskTemplate": task, **arguments}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current(task: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """Whether a task (as ``tasks`` lists it) was made from ``template`` (the service's TaskTemplate as Swarm has
    it): Swarm copies the template into each task it makes, so the two read back the same (measured on Engine
    20.10: every field but ``Runtime``)."""
    spec = task.get("Spec") or {}
    return {k: v for k, v in spec.items() if k not in UNCOMPARED} == {
        k: v for k, v in template.items() if k not in UNCOMPARED
    }
