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

Its address is never one the service's name gave out before. Docker's IPAM hands out the lowest free address of
a network, which after an update is the old container's: a dialer that still holds it (a connection attempt
retrying its SYN when the old container left, a DNS cache: Docker's DNS answers with a TTL of 600 s) would reach
the new container before its healthcheck passed, and a failed update's container would answer requests (the
flaky docker test: one request answered by a never-ready v3). So on the networks whose subnet is fixed (the
ones unistack creates for a start-first service, see ``resources.pin_subnet``, and any with an ``ipam`` subnet)
the new container asks for the highest free address that is not among those the service had in its last
updates (the live container's, and the ones it recorded in its ``dev.unistack.retired-addresses`` label, which
the new one carries on). Docker's own lowest-free choices for other containers stay clear of it too. A network
whose subnet is not fixed (an external one, or one an older unistack created) keeps Docker's choice: ``up`` warns
once per network (``unfixed_networks``), naming the services and the fix.

Owns those names, addresses and the network reconnections; never decides when (the engine's rollout does), never
stops a container (the runtime's stop does). Blocking: called in threads.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

import docker.errors

from unistack.config.model import Project, Service
from unistack.config.updates import update_order
from unistack.errors import NotSupported, RuntimeFailure
from unistack.runtimes.docker import resources, spec
from unistack.runtimes.docker.resources import IMAGE_LABEL, SUBNET_LABEL

RETIRED_LABEL = "dev.unistack.retired-addresses"
REMEMBERED = 16  # addresses of the service's last incarnations kept out of a new container's reach
_handed_out: set[str] = set()  # chosen by this process (two services updated at once never pick one address)
_choosing = threading.Lock()


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


def retired(live: Mapping[str, Any] | None) -> list[str]:
    """The addresses the service had lately: the live container's, then those it recorded (newest first)."""
    if live is None:
        return []
    networks = (live.get("NetworkSettings") or {}).get("Networks") or {}
    now = [str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")]
    try:
        before = json.loads(((live.get("Config") or {}).get("Labels") or {}).get(RETIRED_LABEL) or "[]")
    except ValueError:
        before = []
    kept = [a for a in before if isinstance(a, str)] if isinstance(before, list) else []
    return list(dict.fromkeys(now + kept))[:REMEMBERED]


def choose_address(pool: str, taken: Collection[str]) -> str | None:
    """The highest address of ``pool`` (a subnet or ip_range, IPv4) that is not ``taken``; None when full."""
    network = ipaddress.ip_network(pool, strict=False)
    if not isinstance(network, ipaddress.IPv4Network) or network.num_addresses < 4:
        return None
    avoid = set()
    for text in taken:
        with contextlib.suppress(ValueError):
            avoid.add(ipaddress.ip_address(text.partition("/")[0]))
    top, bottom = int(network.broadcast_address) - 1, int(network.network_address) + 1
    for value in range(top, max(bottom, top - len(avoid) - 1) - 1, -1):  # at most len(avoid) + 2 steps
        if (address := ipaddress.IPv4Address(value)) not in avoid:
            return str(address)
    return None


def _fixed_address(api: Any, network: str, avoid: Collection[str]) -> str | None:
    """An address for the new container on ``network`` when its subnet is fixed, else None (Docker picks)."""
    info = api.inspect_network(network)
    if (info.get("Labels") or {}).get(SUBNET_LABEL) != "fixed":
        return None
    taken = set(avoid) | _handed_out
    taken |= {str(c.get("IPv4Address") or "") for c in (info.get("Containers") or {}).values()}
    for pool in (info.get("IPAM") or {}).get("Config") or []:
        taken |= {str(pool.get("Gateway") or "")} | {str(a) for a in (pool.get("AuxiliaryAddresses") or {}).values()}
        range_ = pool.get("IPRange") or pool.get("Subnet")
        if range_ and (address := choose_address(str(range_), taken)) is not None:
            _handed_out.add(address)
            return address
    return None


def create(client: Any, plan: spec.ContainerPlan, image_id: str, owned: dict[str, Any] | None) -> str:
    """Create (not start) the second container: the plan's, under ``beside_name`` and without the aliases, at
    addresses the service never had lately (see the module's docstring). A leftover of an earlier update
    (``owned``: this instance's, checked by the caller) is removed first."""
    api = client.api
    name = beside_name(plan)
    if owned is not None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(owned["Id"], force=True, v=False)
    live = None
    with contextlib.suppress(docker.errors.NotFound):
        live = api.inspect_container(plan.name)
    history = retired(live)
    with _choosing:
        addresses = {a.network: _fixed_address(api, a.network, history) for a in plan.attachments}
    labels = {**plan.create["labels"], IMAGE_LABEL: image_id, RETIRED_LABEL: json.dumps(history)}
    config = {**plan.create, "name": name, "labels": labels}
    first = plan.attachments[0]
    config["networking_config"] = {first.network: _endpoint(addresses[first.network])}
    container_id = str(client.containers.create(**config).id)
    try:
        for attachment in plan.attachments[1:]:
            api.connect_container_to_network(
                container_id, attachment.network, ipv4_address=addresses[attachment.network]
            )
    except Exception:
        api.remove_container(container_id, force=True)
        raise
    return container_id


def _endpoint(address: str | None) -> dict[str, Any]:
    return {"IPAMConfig": {"IPv4Address": address}} if address else {}


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
        address = (now.get("IPAMConfig") or {}).get("IPv4Address") or None  # the one it asked for, kept
        with contextlib.suppress(docker.errors.APIError):
            api.disconnect_container_from_network(container_id, attachment.network)
        api.connect_container_to_network(
            container_id, attachment.network, aliases=list(attachment.aliases), ipv4_address=address
        )


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


def start_first_networks(project: Project) -> dict[str, list[str]]:
    """The networks (full names) whose services would be updated start-first with a second container, and them."""
    joined: dict[str, list[str]] = {}
    for service in project.services.values():
        if update_order(service) != "start-first":
            continue
        with contextlib.suppress(NotSupported):  # replaced stop-first: no second container
            for attachment in check(project, service).attachments:
                joined.setdefault(attachment.network, []).append(service.name)
    return joined


def unfixed_networks(project: Project, connect: Callable[[], Any]) -> list[str]:
    """For ``up``: one warning per existing network that a start-first service joins and whose subnet is not
    fixed, so its update's second container gets Docker's lowest free address (possibly its old container's),
    naming the services and the fix. A network that does not exist yet is created with its subnet fixed: no
    warning. The engine is asked (``connect``) only when some service is start-first; one that does not answer
    gives no warning (``up`` says what is wrong)."""
    from unistack.runtimes.docker import engine

    joined = start_first_networks(project)
    if not joined:
        return []
    try:
        found = {str(n.get("Name")): n for n in connect().api.networks(names=list(joined))}
    except (*engine.Errors, RuntimeFailure):
        return []
    warnings = []
    for plan in resources.network_plans(project):
        network, services = found.get(plan.name), joined.get(plan.name)
        if network is None or not services or (network.get("Labels") or {}).get(SUBNET_LABEL) == "fixed":
            continue
        if plan.external:
            whose, fix = (
                "external",
                (
                    "create it with a subnet and the label that says so (docker network create --subnet SUBNET "
                    f"--label {SUBNET_LABEL}=fixed {plan.name})"
                ),
            )
        elif plan.pin_subnet or SUBNET_LABEL in plan.create.get("labels", {}):
            whose, fix = (
                "created by an older unistack",
                "run `unistack down` and then `up` once: it is created again with its subnet fixed",
            )
        else:
            whose, fix = (
                f"{plan.create.get('driver')}, its subnet chosen by Docker",
                (
                    f"give it one in the file (networks.{plan.key}.ipam.config: [{{subnet: ...}}]), then "
                    "`unistack down` and `up`"
                ),
            )
        warnings.append(
            f"network {plan.name} ({whose}) has no fixed subnet, so a start-first update of "
            f"{', '.join(services)} gets the lowest free address Docker hands out, which can be its old "
            f"container's (docs/deployment.md); {fix}"
        )
    return warnings
