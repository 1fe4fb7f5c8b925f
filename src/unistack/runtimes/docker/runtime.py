"""The Docker runtime: each service is one container on a Docker Engine, named and labelled as Compose does.

The Runtime driver the engine sees, one method each, most handing the work to the module whose job it is: the
instance's networks and named volumes (``prepare``/``cleanup``, as ``docker compose up``/``down``: see
``resources``), making sure a service's image exists (``setup``: built through ``images``, its output in
``logs/<service>.build.log``), a changed manifest installed into the running container (``installs``), the
container ``<project>-<service>-1`` brought to running (``containers``: reused while its config hash and image
are unchanged, so its log continues across restarts), health probes run inside it with exec (``healthchecks``),
stopping it (``stopping``: signal, grace, SIGKILL; a frozen one killed at once), a start-first update's second
container (``beside``) and which container is the update's (kept here, so a failed update's log is the next
``tail``), whether a container is outdated, re-adopting it after a supervisor restart, and its logs (``logs``).
Docker's own restart policy and image HEALTHCHECK are never used: the engine decides restarts and runs the
probes. Blocking SDK calls run in daemon threads (``engine.call``); errors become RuntimeFailure there.
Never decides when to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors
import msgspec

from unistack.config.model import Healthcheck, Project, Service
from unistack.errors import NotSupported, RuntimeFailure
from unistack.runtimes import DOCKER, logfiles
from unistack.runtimes.base import Handle, ProbeResult, StopResult
from unistack.runtimes.docker import beside as next_container
from unistack.runtimes.docker import containers, healthchecks, images, installs, resources, spec, stopping
from unistack.runtimes.docker import logs as docker_logs
from unistack.runtimes.docker.engine import Errors, ExitWatcher, call, connect, explain, in_thread, is_local


class DockerRuntime:
    name = DOCKER

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self._client_lock = threading.Lock()
        self._docker: docker.DockerClient | None = None
        self._closed = False
        self._exits = ExitWatcher(self.client)
        # start-first updates: the variant of each service whose start is a second container, and that container
        self._beside: dict[str, Service] = {}
        self._beside_ids: dict[str, str] = {}
        self._stopped_beside: dict[str, str] = {}  # a failed update's container, until its log was read

    # ----------------------------------------------------------------- the connection

    def client(self) -> docker.DockerClient:
        """The SDK client, connected on first use (blocking: call it from a thread)."""
        with self._client_lock:
            if self._closed:
                raise RuntimeFailure("this Docker runtime was closed")
            if self._docker is None:
                self._docker = connect(self.environ)
            return self._docker

    def close(self) -> None:
        """Stop the event thread and close the connection (tests; a daemon simply exits)."""
        self._exits.close()
        with self._client_lock:
            self._closed = True
            if self._docker is not None:
                self._docker.close()
                self._docker = None

    # ----------------------------------------------------------------- instance resources

    async def prepare(self, project: Project) -> None:
        try:
            project.state_dir.mkdir(parents=True, exist_ok=True)
            project.run_dir.mkdir(mode=0o700, exist_ok=True)
            project.logs_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot prepare the state folder {project.state_dir}: {exc.strerror}") from exc
        await call(
            f"cannot prepare the networks and volumes of {project.name}",
            lambda: resources.prepare_resources(self.client(), project),
        )

    async def cleanup(self, project: Project, remove_volumes: bool) -> None:
        problems: list[str] = await call(
            f"cannot remove the containers of {project.name}",
            lambda: resources.remove_resources(self.client(), project, remove_volumes),
        )
        if problems:
            raise RuntimeFailure("; ".join(problems))

    async def housekeeping(self, project: Project) -> None:
        for service in project.services:  # the engine's json-file logs rotate as dockerd is configured
            logfiles.rotate_if_needed(docker_logs.build_log_path(project, service))

    # ----------------------------------------------------------------- images

    def setup_step(self, service: Service) -> str | None:
        build = service.spec.get("build")
        image = service.spec.get("image") or f"(the {service.name} image)"
        return f"build {image} if its context changed" if isinstance(build, dict) else f"make sure {image} is here"

    async def setup(self, project: Project, service: Service) -> ProbeResult:
        path = docker_logs.build_log_path(project, service.name)
        try:
            log = docker_logs.BuildLog(path)
        except OSError as exc:
            return ProbeResult(False, None, f"cannot open the build log {path}: {exc.strerror}")
        try:
            await call(
                f"cannot build the image of {service.name}",
                lambda: images.ensure_service_image(self.client(), project, service, log.emit),
            )
        except RuntimeFailure as exc:
            log.emit(str(exc))
            return ProbeResult(False, 1, "\n".join(logfiles.tail_lines(path, 15)))
        finally:
            log.close()
        return ProbeResult(True, 0, "\n".join(logfiles.tail_lines(path, 15)))

    def install_step(self, service: Service) -> str | None:
        deps = service.dependencies
        return f"{' '.join(deps.install)} in its container" if deps is not None and deps.install else None

    async def install(self, project: Project, service: Service, handle: Handle | None) -> ProbeResult:
        """The changed manifests copied into the running container and its install command run there (output in
        the build log, which ``logs`` shows first); no image is built."""
        if handle is None:
            return ProbeResult(False, None, f"{service.name} has no running container to install into")
        path = docker_logs.build_log_path(project, service.name)
        try:
            log = docker_logs.BuildLog(path)
        except OSError as exc:
            return ProbeResult(False, None, f"cannot open the build log {path}: {exc.strerror}")
        run = installs.Install(self.environ, handle.ident, service, log.emit)
        try:
            return await in_thread(run.run)
        except asyncio.CancelledError:
            threading.Thread(target=run.abandon, daemon=True).start()
            raise
        except (RuntimeFailure, *Errors) as exc:
            log.emit(str(exc))
            return ProbeResult(False, None, explain(exc))
        finally:
            log.close()

    # ----------------------------------------------------------------- containers

    async def start(self, project: Project, service: Service) -> Handle:
        if self._beside.get(service.name) is service:  # a start-first update's second container
            return await call(f"cannot start {service.name}", lambda: self._start_beside(project, service))
        plan = spec.container_plan(project, service)
        local = is_local(self.environ)
        return await call(
            f"cannot start {service.name}", lambda: containers.start(self.client(), project, service, plan, local)
        )

    async def wait(self, handle: Handle) -> int | None:
        return await self._exits.wait(handle.ident)

    def exit_detail(self, handle: Handle) -> str:
        if self._exits.oom_killed(handle.ident):
            return "out of memory: the kernel's OOM killer ended it (OOMKilled)"
        return ""

    def unknown_exit(self, handle: Handle) -> str:
        return self._exits.unknown_because(handle.ident) or "the engine could not tell it"

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        if self._beside_ids.get(handle.service) == handle.ident:  # a failed update's new container, stopped:
            self._beside_ids.pop(handle.service)  # its log is what the next ``tail`` of the service reads
            self._beside.pop(handle.service, None)
            self._stopped_beside[handle.service] = handle.ident
        return await stopping.stop(self.client, self._exits, is_local(self.environ), handle, signal_name, grace)

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        return await healthchecks.probe(self.client, handle.ident, check)

    def beside(self, project: Project, service: Service) -> Service:
        next_container.check(project, service)
        variant = msgspec.structs.replace(service, name=service.name)  # this very object: its start is beside
        self._beside[service.name] = variant
        return variant

    def _start_beside(self, project: Project, service: Service) -> Handle:
        plan = spec.container_plan(project, service)
        client = self.client()
        container_id = containers.create_beside(client, project, service, plan)
        self._beside_ids[service.name] = container_id
        return containers.run(client, service, plan, container_id, fresh=True)

    async def switch(self, project: Project, service: Service, beside: Service) -> None:
        container_id = self._beside_ids.get(service.name)
        if container_id is None:
            raise RuntimeFailure(f"{service.name}: no new container to switch to")
        await call(
            f"cannot switch {service.name}",
            lambda: next_container.switch(self.client().api, project, service, container_id),
        )

    async def settle(self, project: Project, service: Service, beside: Service) -> None:
        self._beside.pop(service.name, None)
        container_id = self._beside_ids.pop(service.name, None)
        if container_id is None:
            return
        plan = spec.container_plan(project, service)
        await call(
            f"cannot rename {service.name}'s new container",
            lambda: next_container.settle(self.client().api, plan, container_id),
        )

    async def finish_update(self, project: Project, service: Service, new: Handle) -> None:
        """The old container (Compose's name, another id: its hash is the old version's, so nothing adopted it)
        stopped with its stop signal and grace period, then removed and the new one renamed (``settle``)."""
        plan = spec.container_plan(project, service)
        grace = max(1, round(service.stop_grace_period))

        def finish() -> None:
            api = self.client().api
            old = containers.inspect(api, plan.name)
            if old is not None and old["Id"] != new.ident and old["State"].get("Running"):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    api.stop(old["Id"], timeout=grace)
            next_container.settle(api, plan, new.ident)

        await call(f"cannot finish the update of {service.name}", finish)

    async def outdated(self, project: Project, service: Service, handle: Handle) -> str | None:
        """A build context changed since the image was built (``up`` builds it again before the new container),
        or the service's image name now points to another image than the container runs (``unistack build``)."""

        def why() -> str | None:
            client = self.client()
            build = images.plan_for(project, service)
            if build is not None and (reason := images.stale(client, build)):
                return reason
            info = containers.inspect(client.api, handle.ident)
            name = images.image_name(project, service)
            current = images.image_id(client, name)
            if info is not None and current is not None and info.get("Image") != current:
                return f"its image {name} was rebuilt" if build is not None else f"its image {name} changed"
            return None

        return await call(f"cannot check the image of {service.name}", why)

    async def adopt(self, project: Project, service: Service, record: dict[str, Any]) -> Handle | None:
        container_id = str(record.get("id") or "")
        if not container_id:
            return None
        try:
            plan = spec.container_plan(project, service)
        except NotSupported:
            return None

        def find() -> dict[str, Any] | None:
            return containers.inspect(self.client().api, container_id)

        try:
            info = await in_thread(find)
        except (RuntimeFailure, *Errors):
            return None
        if info is None or not info["State"].get("Running"):
            return None
        labels = info["Config"].get("Labels") or {}
        if labels.get(resources.HASH_LABEL) != plan.config_hash or labels.get(resources.STATE_DIR_LABEL) != str(
            project.state_dir
        ):
            return None
        return containers.handle(service.name, info, plan, adopted=True)

    async def strays(self, state_dir: Path, known: set[str]) -> list[Handle]:
        def running() -> list[dict[str, Any]]:
            api = self.client().api
            filters = {"label": [f"{resources.STATE_DIR_LABEL}={state_dir}"], "status": "running"}
            return [dict(row) for row in api.containers(filters=filters)]

        try:
            rows = await in_thread(running)
        except (RuntimeFailure, *Errors):
            return []  # no engine: nothing of this instance can be running on it
        found = []
        for row in rows:
            if row["Id"] in known:
                continue
            labels = row.get("Labels") or {}
            name = str((row.get("Names") or ["/"])[0]).lstrip("/")
            record = {"id": row["Id"], "name": name, "config_hash": labels.get(resources.HASH_LABEL, "")}
            service = str(labels.get(resources.SERVICE_LABEL, name))
            found.append(Handle(service, row["Id"], float(row.get("Created", 0)), record, adopted=True))
        return found

    # ----------------------------------------------------------------- logs

    async def tail(self, project: Project, service: str, lines: int) -> list[str]:
        if (stopped := self._stopped_beside.pop(service, None)) is not None:  # what the failed update printed
            return await call(
                f"cannot read the log of {service}'s new container",
                lambda: [text for _, text in docker_logs.container_history(self.client(), stopped, lines)],
            )
        return await call(
            f"cannot read the log of {service}",
            lambda: docker_logs.tail_lines(self.client(), project, service, lines),
        )

    def logs(
        self, project: Project, services: Sequence[str], tail: int | None, follow: bool
    ) -> AsyncIterator[logfiles.LogLine]:
        return docker_logs.read_logs(self.client, project, services, tail, follow)
