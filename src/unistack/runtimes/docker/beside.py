"""Start-first updates in containers: a second container of a service beside the live one, switched to by DNS.

The new container, ``<project>-<service>-2``, is created from the service's plan (the same image, labels and
config hash) on the same networks but under none of the service's aliases, so nothing that dials the service
by name (the proxy: ``backend:8000``) reaches it while its healthcheck runs; its own name resolves, and it
reaches what it needs (the database) at once. The switch reconnects it, on the networks it shares with the
services that depend on it (the proxy's), under the service's aliases: Docker's DNS then answers with both
addresses, and once the old container stops (a server closes its listener on its stop signal, and a dialer
such as Go's, Caddy's, tries the next address of a name when one refuses) and leaves the networks, with the
new one's only. Its other networks are left alone, so its database connections survive the switch. Once the
old container is gone it is removed and the new one takes Compose's name (``-1``), so everything keyed on the
name (logs, exec, backup, the next ``up``) finds it.

Owns those names and the network reconnections; never decides when (the engine's rollout does), never stops a
container (the runtime's stop does). Blocking: called in threads.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker.errors

from unistack.config.model import Project, Service
from unistack.errors import NotSupported
from unistack.runtimes.docker import spec
from unistack.runtimes.docker.resources import IMAGE_LABEL


def beside_name(plan: spec.ContainerPlan) -> str:
    return plan.name[:-2] + "-2" if plan.name.endswith("-1") else plan.name + "-2"


def check(project: Project, service: Service) -> spec.ContainerPlan:
    """The plan of the service's container, or ``NotSupported`` when a second one could not run beside it."""
    plan = spec.container_plan(project, service)
    if any(p.published is not None for p in service.ports):
        raise NotSupported(
            f"{service.name} publishes a host port, which its new container could not bind beside the old one"
        )
    if not plan.attachments:
        raise NotSupported(f"{service.name} joins no network of its own (network_mode), so it has no alias to switch")
    if any(a.ipv4_address or a.ipv6_address for a in plan.attachments):
        raise NotSupported(f"{service.name} has a fixed address on a network, which two containers cannot share")
    return plan


def create(client: Any, plan: spec.ContainerPlan, image_id: str, owned: dict[str, Any] | None) -> str:
    """Create (not start) the second container: the plan's, under ``beside_name`` and without the aliases. A
    leftover of an earlier update (``owned``: this instance's, checked by the caller) is removed first."""
    api = client.api
    name = beside_name(plan)
    if owned is not None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(owned["Id"], force=True, v=False)
    first = plan.attachments[0]
    config = {**plan.create, "name": name, "labels": {**plan.create["labels"], IMAGE_LABEL: image_id}}
    config["networking_config"] = {first.network: {}}
    container_id = str(client.containers.create(**config).id)
    try:
        for attachment in plan.attachments[1:]:
            api.connect_container_to_network(container_id, attachment.network)
    except Exception:
        api.remove_container(container_id, force=True)
        raise
    return container_id


def _dependents_networks(project: Project, service: Service) -> set[str]:
    networks: set[str] = set()
    for other in project.services.values():
        if service.name in other.depends_on:
            with contextlib.suppress(NotSupported):
                networks |= {a.network for a in spec.container_plan(project, other).attachments}
    return networks


def switch(api: Any, project: Project, service: Service, container_id: str) -> None:
    """Join the new container to its dependents' networks under the service's aliases (idempotent)."""
    plan = spec.container_plan(project, service)
    shared = _dependents_networks(project, service)
    chosen = [a for a in plan.attachments if a.network in shared] or list(plan.attachments)
    info = api.inspect_container(container_id)
    joined = info["NetworkSettings"].get("Networks") or {}
    for attachment in chosen:
        now = joined.get(attachment.network) or {}
        if service.name in (now.get("Aliases") or []):
            continue
        with contextlib.suppress(docker.errors.APIError):
            api.disconnect_container_from_network(container_id, attachment.network)
        api.connect_container_to_network(container_id, attachment.network, aliases=list(attachment.aliases))


def settle(api: Any, plan: spec.ContainerPlan, container_id: str) -> None:
    """After the old container stopped: remove it and give the new one Compose's name."""
    old = None
    with contextlib.suppress(docker.errors.NotFound):
        old = api.inspect_container(plan.name)
    if old is not None and old["Id"] != container_id:
        if old["State"].get("Running"):
            return  # not stopped after all: leave both, the next `up` recreates
        api.remove_container(old["Id"], force=True, v=False)
    if old is None or old["Id"] != container_id:
        api.rename(container_id, plan.name)
