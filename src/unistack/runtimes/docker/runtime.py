"""The Docker runtime: each service is one container on a Docker Engine, named and labelled as Compose does.

Owns the instance's networks and named volumes (``prepare``/``cleanup``, as ``docker compose up``/``down``),
making sure a service's image exists (``setup``: built through ``docker.images``, its output in
``logs/<service>.build.log``), creating or reusing the container ``<project>-<service>-1`` (reused while its
config hash and image are unchanged, so its log continues across restarts), health probes run inside it with
exec, stopping it (signal, grace, SIGKILL; a paused container or one whose main process is stopped is killed at
once), re-adopting it after a supervisor restart, and its logs. Docker's
own restart policy and image HEALTHCHECK are never used: the engine decides restarts and runs the probes.
Blocking SDK calls run in daemon threads (``engine.in_thread``); errors become RuntimeFailure here.
Never decides when to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import docker.errors
import msgspec
import requests

from unistack.config.model import Healthcheck, Project, Service
from unistack.errors import NotSupported, PermanentFailure, RuntimeFailure
from unistack.runtimes import DOCKER, logfiles
from unistack.runtimes.base import Handle, ProbeResult, StopResult
from unistack.runtimes.docker import beside as next_container
from unistack.runtimes.docker import images, installs, probe_kill, resources, spec
from unistack.runtimes.docker import logs as docker_logs
from unistack.runtimes.docker.engine import (
    Errors,
    ExitWatcher,
    close_stream,
    connect,
    explain,
    failure,
    in_thread,
    is_local,
    parse_time,
)
from unistack.runtimes.docker.frozen import frozen_state
from unistack.runtimes.host import check_port_free, signal_number
from unistack.runtimes.logwriter import Appender

OUTPUT_LIMIT = 4000
KILL_WAIT = 10.0  # seconds to wait for a container to exit after SIGKILL


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

    async def _call(self, doing: str, fn: Callable[[], Any]) -> Any:
        try:
            return await in_thread(fn)
        except Errors as exc:
            raise failure(doing, exc) from exc

    # ----------------------------------------------------------------- instance resources

    async def prepare(self, project: Project) -> None:
        try:
            project.state_dir.mkdir(parents=True, exist_ok=True)
            project.run_dir.mkdir(mode=0o700, exist_ok=True)
            project.logs_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot prepare the state folder {project.state_dir}: {exc.strerror}") from exc
        await self._call(
            f"cannot prepare the networks and volumes of {project.name}",
            lambda: resources.prepare_resources(self.client(), project),
        )

    async def cleanup(self, project: Project, remove_volumes: bool) -> None:
        problems: list[str] = await self._call(
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
            path.parent.mkdir(parents=True, exist_ok=True)
            log = _LineLog(path)
        except OSError as exc:
            return ProbeResult(False, None, f"cannot open the build log {path}: {exc.strerror}")
        try:
            await self._call(
                f"cannot build the image of {service.name}",
                lambda: self._ensure_image(project, service, log.emit),
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
            path.parent.mkdir(parents=True, exist_ok=True)
            log = _LineLog(path)
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

    def _ensure_image(self, project: Project, service: Service, emit: Callable[[str], None]) -> None:
        images.ensure_service_image(self.client(), project, service, emit)

    def _image_id(self, project: Project, service: Service, image: str) -> str:
        """The id of the service's image, built first (into the build log) when it is missing."""
        client = self.client()
        try:
            return str(client.images.get(image).id)
        except docker.errors.ImageNotFound:
            pass
        path = docker_logs.build_log_path(project, service.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = _LineLog(path)
        try:
            self._ensure_image(project, service, log.emit)
        finally:
            log.close()
        try:
            return str(client.images.get(image).id)
        except docker.errors.ImageNotFound:
            raise PermanentFailure(
                f"image {image!r} of service {service.name!r} is still missing after setup"
            ) from None

    # ----------------------------------------------------------------- containers

    async def start(self, project: Project, service: Service) -> Handle:
        if self._beside.get(service.name) is service:  # a start-first update's second container
            return cast(
                Handle,
                await self._call(f"cannot start {service.name}", lambda: self._start_beside(project, service)),
            )
        plan = spec.container_plan(project, service)
        return cast(
            Handle,
            await self._call(f"cannot start {service.name}", lambda: self._start(project, service, plan)),
        )

    def _start(self, project: Project, service: Service, plan: spec.ContainerPlan) -> Handle:
        client = self.client()
        api = client.api
        image_id = self._image_id(project, service, plan.image)
        existing = _inspect(api, plan.name)
        if existing is not None:
            _check_owner(project, service, existing)
            labels = existing["Config"].get("Labels") or {}
            if labels.get(resources.HASH_LABEL) != plan.config_hash or existing.get("Image") != image_id:
                if existing["State"].get("Running"):  # an older incarnation still running: stopped as Compose stops
                    # it before recreating (its stop signal, then SIGKILL after the grace period), never killed
                    # outright by the removal (a database killed so starts with a recovery)
                    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                        api.stop(existing["Id"], timeout=max(1, round(service.stop_grace_period)))
                api.remove_container(existing["Id"], force=True, v=False)
                existing = None
            elif existing["State"].get("Running"):  # left running and unchanged: this is the incarnation
                return _handle(service.name, existing, plan, adopted=False)
        if is_local(self.environ):
            for port in service.ports:
                check_port_free(service.name, port)
        if existing is not None:
            try:  # the same container again: its log goes on
                return self._run_container(service, plan, existing["Id"], fresh=False)
            except RuntimeFailure as exc:
                if "already in use" in str(exc) and "Address already in use" not in str(exc):
                    raise  # a host port (the Engine's IPAM says "Address already in use" of a taken fixed address)
                # it cannot start any more (a network it joined was recreated, the address a start-first update
                # gave it was taken meanwhile, ...): replace it
                api.remove_container(existing["Id"], force=True, v=False)
        for folder in plan.host_paths:
            Path(folder).mkdir(parents=True, exist_ok=True)
        create = {**plan.create, "labels": {**plan.create["labels"], resources.IMAGE_LABEL: image_id}}
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
        return self._run_container(service, plan, container_id, fresh=True)

    def _run_container(self, service: Service, plan: spec.ContainerPlan, container_id: str, fresh: bool) -> Handle:
        """Start the container; a fresh one that cannot start is removed again (nothing is left half made)."""
        api = self.client().api
        try:
            api.start(container_id)
        except docker.errors.APIError as exc:
            if fresh:
                with contextlib.suppress(*Errors):
                    api.remove_container(container_id, force=True)
            raise _start_failure(service, exc) from exc
        # started_at is the engine's StartedAt, as adopt() reads it later: one incarnation, one start time
        return _handle(service.name, api.inspect_container(container_id), plan, adopted=False)

    async def wait(self, handle: Handle) -> int | None:
        return await self._exits.wait(handle.ident)

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        if self._beside_ids.get(handle.service) == handle.ident:  # a failed update's new container, stopped:
            self._beside_ids.pop(handle.service)  # its log is what the next ``tail`` of the service reads
            self._beside.pop(handle.service, None)
            self._stopped_beside[handle.service] = handle.ident
        number = signal_number(signal_name)
        frozen = await self._frozen(handle)
        if frozen is not None:  # it cannot act on the stop signal: no grace period waited out for nothing
            return await self._kill_frozen(handle, paused=frozen == "paused")
        if not await self._kill(handle, number):
            return StopResult(killed=False, exit_code=None)
        killed = False
        code: int | None = None
        try:
            async with asyncio.timeout(grace):
                code = await self.wait(handle)
        except TimeoutError:
            killed = True
            await self._kill(handle, int(signal.SIGKILL))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KILL_WAIT):
                    code = await self.wait(handle)
        return StopResult(killed=killed, exit_code=code)

    async def _frozen(self, handle: Handle) -> str | None:
        """``paused`` or ``stopped`` (see ``docker.frozen``), else None (also when no engine answers)."""
        local = is_local(self.environ)
        try:
            return await in_thread(lambda: frozen_state(self.client().api, handle.ident, local))
        except (RuntimeFailure, *Errors):
            return None

    async def _kill_frozen(self, handle: Handle, paused: bool) -> StopResult:
        """SIGKILL at once; a paused container is thawed after it (a frozen cgroup's tasks die only once thawed)."""
        if not await self._kill(handle, int(signal.SIGKILL)):
            return StopResult(killed=False, exit_code=None)
        if paused:

            def unpause() -> None:
                with contextlib.suppress(*Errors):
                    self.client().api.unpause(handle.ident)

            await in_thread(unpause)
        code: int | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_WAIT):
                code = await self.wait(handle)
        return StopResult(killed=True, exit_code=code, frozen=True)

    async def _kill(self, handle: Handle, number: int) -> bool:
        """Send a signal; False when the container is gone. A container that already exited is fine."""

        def kill() -> bool:
            try:
                self.client().api.kill(handle.ident, number)
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: not running (it exited already)
                    raise
            except (RuntimeFailure, requests.ConnectionError):
                return False  # no engine answers: its containers are not running either
            return True

        return cast(bool, await self._call(f"cannot signal {handle.service}", kill))

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        argv = ["/bin/sh", "-c", check.test[0]] if check.kind == "CMD-SHELL" else list(check.test)
        run = _Exec(self.client, handle.ident, argv)
        try:
            async with asyncio.timeout(check.timeout):
                return await in_thread(run.run)
        except TimeoutError:
            await in_thread(run.abandon)
            return ProbeResult(False, None, f"healthcheck timed out after {check.timeout:g}s")
        except asyncio.CancelledError:
            threading.Thread(target=run.abandon, daemon=True).start()
            raise
        except (RuntimeFailure, *Errors) as exc:
            return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")

    def beside(self, project: Project, service: Service) -> Service:
        next_container.check(project, service)
        variant = msgspec.structs.replace(service, name=service.name)  # this very object: its start is beside
        self._beside[service.name] = variant
        return variant

    def _start_beside(self, project: Project, service: Service) -> Handle:
        plan = spec.container_plan(project, service)
        client = self.client()
        image_id = self._image_id(project, service, plan.image)
        leftover = _inspect(client.api, next_container.beside_name(plan))
        if leftover is not None:
            _check_owner(project, service, leftover)
        container_id = next_container.create(client, plan, image_id, leftover)
        self._beside_ids[service.name] = container_id
        return self._run_container(service, plan, container_id, fresh=True)

    async def switch(self, project: Project, service: Service, beside: Service) -> None:
        container_id = self._beside_ids.get(service.name)
        if container_id is None:
            raise RuntimeFailure(f"{service.name}: no new container to switch to")
        await self._call(
            f"cannot switch {service.name}",
            lambda: next_container.switch(self.client().api, project, service, container_id),
        )

    async def settle(self, project: Project, service: Service, beside: Service) -> None:
        self._beside.pop(service.name, None)
        container_id = self._beside_ids.pop(service.name, None)
        if container_id is None:
            return
        plan = spec.container_plan(project, service)
        await self._call(
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
            old = _inspect(api, plan.name)
            if old is not None and old["Id"] != new.ident and old["State"].get("Running"):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    api.stop(old["Id"], timeout=grace)
            next_container.settle(api, plan, new.ident)

        await self._call(f"cannot finish the update of {service.name}", finish)

    async def outdated(self, project: Project, service: Service, handle: Handle) -> str | None:
        """A build context changed since the image was built (``up`` builds it again before the new container),
        or the service's image name now points to another image than the container runs (``unistack build``)."""

        def why() -> str | None:
            client = self.client()
            build = images.plan_for(project, service)
            if build is not None and (reason := images.stale(client, build)):
                return reason
            info = _inspect(client.api, handle.ident)
            name = images.image_name(project, service)
            current = images.image_id(client, name)
            if info is not None and current is not None and info.get("Image") != current:
                return f"its image {name} was rebuilt" if build is not None else f"its image {name} changed"
            return None

        return cast(str | None, await self._call(f"cannot check the image of {service.name}", why))

    async def adopt(self, project: Project, service: Service, record: dict[str, Any]) -> Handle | None:
        container_id = str(record.get("id") or "")
        if not container_id:
            return None
        try:
            plan = spec.container_plan(project, service)
        except NotSupported:
            return None

        def find() -> dict[str, Any] | None:
            return _inspect(self.client().api, container_id)

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
        return _handle(service.name, info, plan, adopted=True)

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
            return cast(
                list[str],
                await self._call(
                    f"cannot read the log of {service}'s new container",
                    lambda: [text for _, text in docker_logs.container_history(self.client(), stopped, lines)],
                ),
            )
        return cast(
            list[str],
            await self._call(
                f"cannot read the log of {service}",
                lambda: docker_logs.tail_lines(self.client(), project, service, lines),
            ),
        )

    def logs(
        self, project: Project, services: Sequence[str], tail: int | None, follow: bool
    ) -> AsyncIterator[logfiles.LogLine]:
        return docker_logs.read_logs(self.client, project, services, tail, follow)


# --------------------------------------------------------------------- helpers


class _LineLog:
    """Appends lines to the build log, one write each (setup's ``emit`` runs in a build thread); lines a full
    disk refuses are dropped and counted (``logwriter.Appender``), so a build never fails for its log."""

    def __init__(self, path: Path) -> None:
        self._out: Appender | None = Appender(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        self._lock = threading.Lock()

    def emit(self, line: str) -> None:
        with self._lock:
            if self._out is not None:
                self._out.write((line.rstrip("\n") + "\n").encode("utf-8", "replace"))

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                out, self._out = self._out, None
                out.finish()
                os.close(out.fd)


class _Exec:
    """One healthcheck run inside a container; ``abandon`` unblocks and ends it when it overstays."""

    def __init__(self, client: Callable[[], docker.DockerClient], container_id: str, argv: list[str]) -> None:
        self.client, self.container_id, self.argv = client, container_id, argv
        self.exec_id: str | None = None
        self.stream: Any = None
        self.abandoned = False

    def run(self) -> ProbeResult:
        api = self.client().api
        try:
            self.exec_id = str(api.exec_create(self.container_id, self.argv, stdout=True, stderr=True)["Id"])
        except docker.errors.NotFound:
            return ProbeResult(False, None, "the container is gone")
        except docker.errors.APIError as exc:
            return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")
        self.stream = api.exec_start(self.exec_id, stream=True)
        output = bytearray()
        try:
            with contextlib.suppress(*Errors, OSError):
                for chunk in self.stream:
                    output += chunk
                    if len(output) > 4 * OUTPUT_LIMIT:
                        del output[: -2 * OUTPUT_LIMIT]
        finally:
            close_stream(self.stream)
        text = output.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
        code = api.exec_inspect(self.exec_id).get("ExitCode")
        if code is None:
            return ProbeResult(False, None, text or "the healthcheck ended without an exit code")
        return ProbeResult(code == 0, int(code), text)

    def abandon(self) -> None:
        """Close the output stream (the waiting thread returns) and kill the check's process when it is ours."""
        self.abandoned = True
        if self.stream is not None:
            close_stream(self.stream)
        if self.exec_id is None:
            return
        with contextlib.suppress(Exception):
            pid = int(self.client().api.exec_inspect(self.exec_id).get("Pid") or 0)
            # the engine reports a host pid; killed only when it is visibly this check on this machine, with what
            # it started, leaves first (an orphan would be reaped by the container's PID 1: see probe_kill)
            if pid:
                probe_kill.end_check(pid, self.argv)


def _inspect(api: Any, ref: str) -> dict[str, Any] | None:
    try:
        return dict(api.inspect_container(ref))
    except docker.errors.NotFound:
        return None


def _check_owner(project: Project, service: Service, info: dict[str, Any]) -> None:
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


def _handle(service: str, info: dict[str, Any], plan: spec.ContainerPlan, adopted: bool) -> Handle:
    started = info["State"].get("StartedAt") or ""
    try:
        started_at = parse_time(started)
    except ValueError:
        started_at = time.time()
    record = {"id": info["Id"], "name": plan.name, "config_hash": plan.config_hash}
    return Handle(service=service, ident=info["Id"], started_at=started_at, record=record, adopted=adopted)


_ADDRESS = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]*::[0-9a-fA-F:]*):(\d+)")


def _start_failure(service: Service, exc: docker.errors.APIError) -> RuntimeFailure:
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
