"""Images to the nodes: each service's image built (or found) on the engine the deploy talks to, exactly as ``up``
does (``runtimes.docker.images``: content-hashed, the base bootstrapped offline when missing), then tagged
``<registry>/<image>:<id>`` and pushed (unless the registry has that tag already), so every node pulls the same
bytes. The tag is the image's own id: an
image that did not change keeps its reference, and a redeploy leaves its services alone.

Without a registry (a one-node swarm), the local image is used as it is. Never starts a registry (the harness in
tests/swarm and docs/deployment.md say how to run Debian's ``docker-registry``); never touches services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unistack.config.model import Project
from unistack.errors import RuntimeFailure
from unistack.runtimes.docker import images as docker_images
from unistack.targets.swarm.export import StackPlan

Emit = Callable[[str], None]


def reference(registry: str, local: str, image_id: str) -> tuple[str, str]:
    """(repository, tag) of ``local`` in ``registry``: ``stack-db:latest`` -> (``reg:5000/stack-db``, ``<id12>``)."""
    repository = local.rsplit(":", 1)[0] if ":" in local.rsplit("/", 1)[-1] else local
    return f"{registry.rstrip('/')}/{repository}", image_id.removeprefix("sha256:")[:12]


def ship(client: Any, project: Project, plan: StackPlan, registry: str | None, emit: Emit) -> dict[str, str]:
    """Service -> the image reference its tasks run; each image built, tagged and pushed once."""
    shipped: dict[str, str] = {}
    refs: dict[str, str] = {}
    for name, service in plan.services.items():
        local = service.image
        if local not in shipped:
            docker_images.ensure_service_image(client, project, project.services[name], emit)
            image_id = docker_images.image_id(client, local)
            if image_id is None:
                raise RuntimeFailure(f"service {name!r}: image {local} is not on the engine after its build")
            shipped[local] = local if registry is None else _push(client, registry, local, image_id, emit)
        refs[name] = shipped[local]
    return refs


def _push(client: Any, registry: str, local: str, image_id: str, emit: Emit) -> str:
    import docker.errors

    repository, tag = reference(registry, local, image_id)
    try:
        client.images.get(image_id).tag(repository, tag=tag)
        try:  # already there (a redeploy): the registry answers for the tag, nothing to send
            client.api.inspect_distribution(f"{repository}:{tag}")
            return f"{repository}:{tag}"
        except docker.errors.APIError:
            pass
        emit(f"pushing {local} to {repository}:{tag}")
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise RuntimeFailure(
                    f"pushing {local} to the registry {registry} failed: {detail}. Is the registry running, and "
                    f"does every node's dockerd trust it (--insecure-registry {registry} for plain HTTP)?"
                )
    except docker.errors.APIError as exc:
        raise RuntimeFailure(f"pushing {local} to the registry {registry} failed: {exc.explanation or exc}") from exc
    return f"{repository}:{tag}"
