"""A service's container brought to running: created from its plan, started again, or replaced.

Owns the id of the image a container runs (the image built first, into the build log, when it is missing),
looking a container up (``inspect``), refusing one of another project or instance that has our name
(``check_owner``), creating ``<project>-<service>-1`` (its bind-mount folders made, its other networks connected
before start) or starting the existing one again while its config hash and image are unchanged (so its log
continues), an older incarnation stopped as Compose stops it before it is recreated, a start-first update's
second container created (its names and addresses are ``beside``'s), starting a container (a fresh one that
cannot start is removed again: nothing is left half made) and the ``Handle`` of a started or adopted one, with
the engine's ``StartedAt``. A taken host port is a ``PermanentFailure`` naming it. Blocking: called in threads.
Never decides when to start or stop, never waits for an exit, never probes.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

import docker.errors

from unistack.config.model import Project, Service
from unistack.errors import PermanentFailure, RuntimeFailure
from unistack.runtimes.base import Handle
from unistack.runtimes.docker import beside as next_container
from unistack.runtimes.docker import images, resources, spec
from unistack.runtimes.docker import logs as docker_logs
from unistack.runtimes.docker.engine import Errors, explain, parse_time
from unistack.runtimes.host import check_port_free

_ADDRESS = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]*::[0-9a-fA-F:]*):(\d+)")


def start(
    client: docker.DockerClient, project: Project, service: Service, plan: spec.ContainerPlan, local: bool
) -> Handle:
    """The service's container running as ``plan`` says: the running one when unchanged, else started again or
    made anew; ``local``: the engine runs on this machine, so its published ports are checked free first."""
    api = client.api
    image = image_id(client, project, service, plan.image)
    existing = inspect(api, plan.name)
    if existing is not None:
        check_owner(project, service, existing)
        labels = existing["Config"].get("Labels") or {}
        if labels.get(resources.HASH_LABEL) != plan.config_hash or existing.get("Image") != image:
            if existing["State"].get("Running"):  # an older incarnation still running: stopped as Compose stops
                # it before recreating (its stop signal, then SIGKILL after the grace period), never killed
                # outright by the removal (a database killed so starts with a recovery)
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    api.stop(existing["Id"], timeout=max(1, round(service.stop_grace_period)))
            api.remove_container(existing["Id"], force=True, v=False)
            existing = None
        elif existing["State"].get("Running"):  # left running and unchanged: this is the incarnation
            return handle(service.name, existing, plan, adopted=False)
    if local:
        for port in service.ports:
            check_port_free(service.name, port)
    if existing is not None:
        try:  # the same container again: its log goes on
            return run(client, service, plan, existing["Id"], fresh=False)
        except RuntimeFailure as exc:
            if "already in use" in str(exc) and "Address already in use" not in str(exc):
                raise  # a host port (the Engine's IPAM says "Address already in use" of a taken fixed address)
            # it cannot start any more (a network it joined was recreated, the address a start-first update
            # gave it was taken meanwhile, ...): replace it
            api.remove_container(existing["Id"], force=True, v=False)
    for folder in plan.host_paths:
        Path(folder).mkdir(parents=True, exist_ok=True)
    create = {**plan.create, "labels": {**plan.create["labels"], resources.IMAGE_LABEL: image}}
    container_id = str(client.containers.create(**create).id)
    try:
        for attachment in plan.attachments[1:]:
            api.connect_container_to_network(
                container_id,
                attachment.network,
                aliases=list(attachment.aliases),
                ipv4_address=attachment.ipv4_address,
                ipv6_address=attachment.ipv6_address,
                link_local_ips=list(attachment.link_local_ips) or None,
            )
    except Exception:
        api.remove_container(container_id, force=True)
        raise
    return run(client, service, plan, container_id, fresh=True)


def create_beside(client: docker.DockerClient, project: Project, service: Service, plan: spec.ContainerPlan) -> str:
    """A start-first update's second container, created (not started) beside the live one; its id."""
    image = image_id(client, project, service, plan.image)
    leftover = inspect(client.api, next_container.beside_name(plan))
    if leftover is not None:
        check_owner(project, service, leftover)
    return next_container.create(client, plan, image, leftover)


def run(
    client: docker.DockerClient, service: Service, plan: spec.ContainerPlan, container_id: str, fresh: bool
) -> Handle:
    """Start the container; a fresh one that cannot start is removed again (nothing is left half made)."""
    api = client.api
    try:
        api.start(container_id)
    except docker.errors.APIError as exc:
        if fresh:
            with contextlib.suppress(*Errors):
                api.remove_container(container_id, force=True)
        raise start_failure(service, exc) from exc
    # started_at is the engine's StartedAt, as adopt() reads it later: one incarnation, one start time
    return handle(service.name, api.inspect_container(container_id), plan, adopted=False)


def image_id(client: docker.DockerClient, project: Project, service: Service, image: str) -> str:
    """The id of the service's image, built first (into the build log) when it is missing."""
    try:
        return str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        pass
    log = docker_logs.BuildLog(docker_logs.build_log_path(project, service.name))
    try:
        images.ensure_service_image(client, project, service, log.emit)
    finally:
        log.close()
    try:
        return str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        raise PermanentFailure(f"image {image!r} of service {service.name!r} is still missing after setup") from None


def inspect(api: Any, ref: str) -> dict[str, Any] | None:
    """The engine's inspection of a container by name or id; None when there is none."""
    try:
        return dict(api.inspect_container(ref))
    except docker.errors.NotFound:
        return None


def check_owner(project: Project, service: Service, info: dict[str, Any]) -> None:
    """Never take over a container of another project or another instance that happens to have our name."""
    labels = info["Config"].get("Labels") or {}
    mine = (
        labels.get(resources.PROJECT_LABEL) == project.name
        and labels.get(resources.SERVICE_LABEL) == service.name
        and labels.get(resources.STATE_DIR_LABEL) == str(project.state_dir)
    )
    if not mine:
        name = info.get("Name", "").lstrip("/")
        owner = labels.get(resources.STATE_DIR_LABEL) or labels.get(resources.PROJECT_LABEL) or "something else"
        raise PermanentFailure(
            f"a container named {name!r} already exists and belongs to {owner}, not to this instance; "
            f"remove it (docker rm -f {name}) or use another project name (-p)"
        )


def handle(service: str, info: dict[str, Any], plan: spec.ContainerPlan, adopted: bool) -> Handle:
    """The Handle of an inspected container, started at the engine's ``StartedAt``."""
    started = info["State"].get("StartedAt") or ""
    try:
        started_at = parse_time(started)
    except ValueError:
        started_at = time.time()
    record = {"id": info["Id"], "name": plan.name, "config_hash": plan.config_hash}
    return Handle(service=service, ident=info["Id"], started_at=started_at, record=record, adopted=adopted)


def start_failure(service: Service, exc: docker.errors.APIError) -> RuntimeFailure:
    text = explain(exc)
    if "port is already allocated" in text or "address already in use" in text:
        match = _ADDRESS.search(text)
        ports = (
            f"{match.group(1)}:{match.group(2)}"
            if match
            else ", ".join(str(p.published) for p in service.ports if p.published is not None)
        )
        return PermanentFailure(
            f"host port {ports} of {service.name} is already in use ({text}); "
            "stop what listens there or publish another port"
        )
    return RuntimeFailure(f"cannot start the container of {service.name}: {text}")
