"""Applying a StackPlan to a Swarm through the docker SDK, in the order Swarm itself ignores: networks, secrets and
configs first, then the services layer by layer (``graph.layers``), each layer waited for before the next starts:
a job's tasks complete, a long-running service's tasks run (a healthchecked task is ``running`` only once its
check passed: Swarm holds it in ``starting`` until then), an update converged (or rolled back: a failure). A
stuck layer fails the deploy with the task's error and its last log lines; every wait has a deadline.

``deploy`` again compares each service's spec hash (a label of the service, servicespec.py): unchanged services
are left alone, changed ones are updated (a rolling update, ``update_config``, when their task template changed;
Swarm makes no new tasks otherwise), changed jobs run again. ``undeploy`` removes the stack's services, networks,
secrets and configs, and its volumes only when asked.

Never builds or pushes images (images.py), never decides the mapping (export.py), never prints (``emit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unistack.errors import RuntimeFailure, ServiceFailure, UsageError
from unistack.targets.swarm import servicespec
from unistack.targets.swarm.export import PINNED, StackPlan, SwarmService
from unistack.targets.swarm.servicespec import HASH_LABEL
from unistack.targets.swarm.taskspec import STACK_LABEL

Emit = Callable[[str], None]
FAILED = ("failed", "rejected", "orphaned")
FAILURES_BEFORE_GIVING_UP = 3  # failed tasks of one service in one deploy (Swarm retries them meanwhile)


@dataclass(frozen=True)
class Outcome:
    service: str
    action: str  # created, updated, unchanged, ran
    seconds: float


def manager_problem(client: Any) -> str | None:
    """Why this engine cannot take a deploy (not in a swarm, or a worker), or None."""
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        return (
            "the Docker engine is not part of a swarm: run `docker swarm init` on it, or point DOCKER_HOST at a manager"
        )
    if not swarm.get("ControlAvailable"):
        return "the Docker engine is a swarm worker: point DOCKER_HOST (or the context) at a manager"
    return None


class Driver:
    def __init__(
        self,
        client: Any,
        emit: Emit,
        *,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.emit = emit
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep

    # ------------------------------------------------------------------------------------------------ deploy

    def deploy(self, plan: StackPlan, images: Mapping[str, str]) -> list[Outcome]:
        if problem := manager_problem(self.client):
            raise UsageError(problem)
        self._networks(plan)
        blobs = {**self._blobs(plan, "secrets"), **self._blobs(plan, "configs")}
        outcomes = []
        for layer in plan.layers:
            started = self.clock()
            applied = {name: self._apply(plan.services[name], images[name], blobs) for name in layer}
            for name in layer:
                action = applied[name]
                self._wait(plan.services[name])
                outcomes.append(Outcome(name, action, self.clock() - started))
                self.emit(f"{name}: {_done(plan.services[name], action)}")
        return outcomes

    def _networks(self, plan: StackPlan) -> None:
        existing = {n.name for n in self.client.networks.list(filters={"label": f"{STACK_LABEL}={plan.project}"})}
        for network in plan.networks:
            if network.name not in existing:
                self.client.networks.create(
                    network.name,
                    driver="overlay",
                    internal=network.internal,
                    attachable=True,
                    labels=network.labels,
                    scope="swarm",
                )
                self.emit(f"network {network.name} created{' (internal)' if network.internal else ''}")

    def _blobs(self, plan: StackPlan, kind: str) -> dict[str, tuple[str, str]]:
        """key -> (id, name), created when missing (Swarm's are immutable: new content has a new name)."""
        collection = self.client.secrets if kind == "secrets" else self.client.configs
        found: dict[str, tuple[str, str]] = {}
        existing = {b.name: b.id for b in collection.list(filters={"label": f"{STACK_LABEL}={plan.project}"})}
        for blob in plan.secrets if kind == "secrets" else plan.configs:
            if blob.name not in existing:
                existing[blob.name] = collection.create(
                    name=blob.name, data=blob.data, labels={STACK_LABEL: plan.project}
                ).id
            found[f"{kind}:{blob.key}"] = (existing[blob.name], blob.name)
        return found

    def _pin(self, service: SwarmService) -> None:
        """A volume's node: the one labelled for it already, else this manager (labelled now)."""
        for volume in service.pinned_volumes:
            label = f"{PINNED}.{volume}"
            if any(n.attrs["Spec"].get("Labels", {}).get(label) == "true" for n in self.client.nodes.list()):
                continue
            node = self.client.nodes.get(self.client.info()["Swarm"]["NodeID"])
            spec = dict(node.attrs["Spec"])
            spec["Labels"] = {**spec.get("Labels", {}), label: "true"}
            node.update(spec)
            self.emit(f"volume {volume} lives on node {node.attrs['Description']['Hostname']} ({node.id[:12]})")

    def _apply(self, service: SwarmService, image: str, blobs: Mapping[str, tuple[str, str]]) -> str:
        """What was done: ``unchanged`` (the same spec hash and scale), ``created``, ``updated`` (Swarm makes new
        tasks only when the task template changed), ``ran`` (a job, created again)."""
        import docker.errors

        used = {f"secrets:{r.key}": blobs[f"secrets:{r.key}"] for r in service.secrets}
        used |= {f"configs:{r.key}": blobs[f"configs:{r.key}"] for r in service.configs}
        current = self._find(service.name)
        wanted = servicespec.body(service, image, used, current["Spec"] if current else None)
        if (
            current is not None
            and current["Spec"]["Labels"].get(HASH_LABEL) == wanted.hash
            and _same_scale(current, service)
        ):
            return "unchanged"
        self._pin(service)
        try:
            if current is not None and service.is_job:
                self.client.api.remove_service(current["ID"])  # a job runs again: a new service
                self._until(f"the old job {service.name} removed", lambda: self._find(service.name) is None, 60)
                current = None
            if current is None:
                self.client.api.create_service(wanted.task, **wanted.arguments)
                return "ran" if service.is_job else "created"
            self.client.api.update_service(
                current["ID"], current["Version"]["Index"], task_template=wanted.task, **wanted.arguments
            )
            return "updated"
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"Swarm refused service {service.service!r}: {exc.explanation or exc}") from exc

    def _find(self, name: str) -> dict[str, Any] | None:
        for found in self.client.api.services(filters={"name": name}):
            if found["Spec"]["Name"] == name:
                return dict(found)
        return None

    # ------------------------------------------------------------------------------------------------ waits

    def _wait(self, service: SwarmService) -> None:
        """Until the tasks of the service's current task template are what ``service`` needs (a job's completions,
        the replicas running, no task of an older template left running), or a failure."""
        deadline = self.clock() + self.timeout
        while True:
            current = self._find(service.name)
            if current is None:
                raise ServiceFailure(f"service {service.service!r} disappeared from the swarm while it was deployed")
            update = current.get("UpdateStatus") or {}
            if update.get("State") in ("rollback_completed", "rollback_paused", "paused"):
                raise self._failure(
                    service, f"its update was {update['State'].replace('_', ' ')}: {update.get('Message', '')}"
                )
            template = current["Spec"]["TaskTemplate"]
            tasks = self.client.api.tasks(filters={"service": service.name})
            failed = [t for t in tasks if t["Status"]["State"] in FAILED and servicespec.current(t, template)]
            if service.is_job:
                done = [t for t in tasks if t["Status"]["State"] == "complete" and servicespec.current(t, template)]
                if failed:
                    raise self._failure(service, _task_error(failed[-1]))
                expected = service.replicas or self._eligible_nodes(service)
                if len(done) >= expected:
                    return
            else:
                if len(failed) >= FAILURES_BEFORE_GIVING_UP:
                    raise self._failure(service, _task_error(failed[-1]))
                live = [t for t in tasks if t["DesiredState"] == "running"]
                running = [t for t in live if t["Status"]["State"] == "running" and servicespec.current(t, template)]
                expected = service.replicas if service.replicas is not None else self._eligible_nodes(service)
                older = [
                    t
                    for t in live
                    if not servicespec.current(t, template) and t["Status"]["State"] in ("running", "starting")
                ]
                settled = update.get("State") in (None, "completed") and not older
                if settled and len(running) >= expected > 0:
                    return
            if self.clock() > deadline:
                latest = max(tasks, key=lambda t: t["UpdatedAt"], default=None)
                state = _task_error(latest) if latest else "no task was scheduled (no node fits its constraints?)"
                raise self._failure(service, f"not ready after {self.timeout:.0f} s; its latest task: {state}")
            self.sleep(0.5)

    def _eligible_nodes(self, service: SwarmService) -> int:
        nodes = self.client.nodes.list()
        return sum(
            1 for n in nodes if n.attrs["Status"]["State"] == "ready" and n.attrs["Spec"]["Availability"] == "active"
        )

    def _failure(self, service: SwarmService, why: str) -> ServiceFailure:
        logs = self.last_logs(service.name, 15)
        tail = "\n".join(f"    {line}" for line in logs) if logs else "    (no output)"
        return ServiceFailure(f"deploying {service.service!r} failed: {why}\n  its last log lines:\n{tail}")

    def last_logs(self, name: str, count: int) -> list[str]:
        import docker.errors

        try:
            raw = self.client.api.service_logs(name, stdout=True, stderr=True, tail=count, follow=False)
            text = b"".join(raw).decode(errors="replace")
        except docker.errors.APIError:
            return []
        return [line for line in text.splitlines() if line.strip()][-count:]

    def _until(self, what: str, ok: Callable[[], bool], seconds: float) -> None:
        deadline = self.clock() + seconds
        while not ok():
            if self.clock() > deadline:
                raise RuntimeFailure(f"{what}: not within {seconds:.0f} s")
            self.sleep(0.5)

    # ------------------------------------------------------------------------------------------------ undeploy

    def undeploy(self, project: str, volumes: bool) -> list[str]:
        """What was removed, in order; services first (their tasks gone), then networks, secrets, configs."""
        import docker.errors

        if problem := manager_problem(self.client):
            raise UsageError(problem)
        label = {"label": f"{STACK_LABEL}={project}"}
        removed: list[str] = []
        services = self.client.api.services(filters=label)
        for found in services:
            self.client.api.remove_service(found["ID"])
            removed.append(f"service {found['Spec']['Name']}")

        def stopped() -> bool:  # on the nodes that answer: a node that is down keeps its tasks' last state
            up = {n.id for n in self.client.nodes.list() if n.attrs["Status"]["State"] == "ready"}
            tasks = self.client.api.tasks(filters=label)
            return not any(t["Status"]["State"] in ("running", "starting") and t.get("NodeID") in up for t in tasks)

        self._until("the stack's tasks stopped", stopped, 120)

        def networks_gone() -> bool:
            left = self.client.networks.list(filters=label)
            for network in left:
                try:
                    network.remove()
                    removed.append(f"network {network.name}")
                except docker.errors.APIError:
                    pass  # still in use by a task being torn down: try again
            return not left

        self._until("the stack's networks removed", networks_gone, 60)
        for collection, kind in ((self.client.secrets, "secret"), (self.client.configs, "config")):
            for blob in collection.list(filters=label):
                blob.remove()
                removed.append(f"{kind} {blob.name}")
        if volumes:  # once the tasks' containers on this node are gone (Swarm removes them after the tasks stop,
            # except a completed global job's: those are removed here)
            for container in self.client.containers.list(all=True, filters={**label, "status": "exited"}):
                container.remove()
            self._until(
                "the stack's containers removed", lambda: not self.client.containers.list(all=True, filters=label), 60
            )
            for volume in self.client.volumes.list(filters=label):
                try:
                    volume.remove()
                    removed.append(f"volume {volume.name}")
                except docker.errors.APIError as exc:
                    raise RuntimeFailure(f"volume {volume.name} was not removed: {exc.explanation or exc}") from exc
        return removed


def _task_error(task: Mapping[str, Any]) -> str:
    status = task["Status"]
    text = f"{status['State']}"
    if status.get("Err"):
        text += f": {status['Err']}"
    elif status.get("Message"):
        text += f" ({status['Message']})"
    exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if exit_code:
        text += f", exit code {exit_code}"
    return text


def _done(service: SwarmService, action: str) -> str:
    if service.is_job:
        return "completed" if action != "unchanged" else "completed before (unchanged)"
    ready = "healthy" if service.healthchecked else "running"
    return f"{action}, {ready}"


def _same_scale(current: Mapping[str, Any], service: SwarmService) -> bool:
    """A replicated service scaled by hand (``docker service scale``) is deployed again with the file's replicas."""
    if service.mode != "replicated":
        return True
    return bool(current["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas") == service.replicas)
