"""What ``validate --target swarm`` reads from a deployment: per service a ``ps`` row made from its Swarm tasks
(healthy: a task runs, which for a healthchecked one means its check passed; a service with no running task is
broken, with its latest task's error and last log lines; a one-shot job: exited 0 once a task completed; failed
tasks in the flapping window count as restarts), the entry service's published port on a given node's address,
the nodes' addresses, and the drift (each deployed service's spec hash against the one the files give now,
servicespec.py, and its replicas). ``ops.validate`` runs the same checks on them as on one host. Never changes
the swarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from unistack.engine.states import PublishedPort, ServiceRow
from unistack.targets.swarm import servicespec
from unistack.targets.swarm.driver import FAILED, Driver, manager_problem
from unistack.targets.swarm.export import Modes, export
from unistack.targets.swarm.servicespec import HASH_LABEL
from unistack.targets.swarm.taskspec import SERVICE_LABEL, STACK_LABEL

if TYPE_CHECKING:
    from unistack.config.model import Project

LOG_LINES = 5
JOBS = ("ReplicatedJob", "GlobalJob")


class Deployment:
    """One read of the deployment of ``project`` (services, tasks, nodes), for the rows on any node."""

    def __init__(self, client: Any, project: Project, now: float) -> None:
        self.client = client
        self.project = project
        self.now = now
        self.problem = manager_problem(client)
        label = {"label": f"{STACK_LABEL}={project.name}"}
        self.services = {
            s["Spec"]["Labels"].get(SERVICE_LABEL, s["Spec"]["Name"]): s for s in client.api.services(filters=label)
        }
        self.tasks = client.api.tasks(filters=label)
        self.nodes = [n.attrs for n in client.nodes.list()]

    def addresses(self) -> list[str]:
        """Every node's address, the ready ones first."""
        ready = sorted(self.nodes, key=lambda n: n["Status"]["State"] != "ready")
        return [str(n["Status"]["Addr"]) for n in ready]

    def down(self) -> list[str]:
        return [
            f"{n['Status']['Addr']} ({n['Description']['Hostname']}: {n['Status']['State']})"
            for n in self.nodes
            if n["Status"]["State"] != "ready"
        ]

    def rows(self, address: str, flapping_window: float) -> list[ServiceRow]:
        return [self._row(name, service, address, flapping_window) for name, service in self.services.items()]

    def _row(self, name: str, service: dict[str, Any], address: str, window: float) -> ServiceRow:
        spec = service["Spec"]
        tasks = [t for t in self.tasks if t["ServiceID"] == service["ID"]]
        checked = bool(spec["TaskTemplate"]["ContainerSpec"].get("Healthcheck", {}).get("Test", ["NONE"]) != ["NONE"])
        running = [t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]
        failed = [t for t in tasks if t["Status"]["State"] in FAILED]
        recent = sorted(
            t["Status"]["Timestamp"] for t in failed if self.now - _epoch(t["Status"]["Timestamp"]) <= window
        )
        ports = [
            PublishedPort(
                host_ip=address,
                host_port=int(p.get("PublishedPort") or p["TargetPort"]),
                target=int(p["TargetPort"]),
                protocol=str(p.get("Protocol", "tcp")),
            )
            for p in (spec.get("EndpointSpec") or {}).get("Ports") or ()
        ]
        state: Any
        exit_code = None
        reason = ""
        mode = spec.get("Mode") or {}
        if any(job in mode for job in JOBS):
            done = [t for t in tasks if t["Status"]["State"] == "complete"]
            if done:
                state, exit_code = "exited", 0
            elif failed:
                latest = max(failed, key=lambda t: t["UpdatedAt"])
                state, exit_code = "exited", int((latest["Status"].get("ContainerStatus") or {}).get("ExitCode") or 1)
                reason = self._broken(spec["Name"], latest)
            else:
                state, reason = "starting", "its job has not completed yet"
        elif running:
            state = "healthy" if checked else "running"
        elif (mode.get("Replicated") or {}).get("Replicas") == 0:
            state, reason = "stopped", "scaled to 0 replicas: no task runs"
        else:
            latest = max(tasks, key=lambda t: t["UpdatedAt"], default=None)
            state = "unhealthy" if checked else "fatal"
            reason = self._broken(spec["Name"], latest)
        return ServiceRow(
            service=name,
            state=state,
            health=("healthy" if running else "unhealthy") if checked else "none",
            restarts=len(failed),
            exit_code=exit_code,
            started_at=min((t["Status"]["Timestamp"] for t in running), default=None),
            last_check=None,
            pid=None,
            container=None,  # no isolation check: the tasks are on other machines
            ports=ports,
            reason=reason,
            restarted_at=recent,
        )

    def _broken(self, name: str, task: dict[str, Any] | None) -> str:
        if task is None:
            what = "no task was scheduled (no node fits its constraints?)"
        else:
            status = task["Status"]
            what = f"no task running; the latest is {status['State']}"
            if status.get("Err"):
                what += f": {status['Err']}"
        logs = Driver(self.client, lambda _: None).last_logs(name, LOG_LINES)
        return what + (f"; its last log lines: {' | '.join(logs)}" if logs else "")

    def changed(self, selected: Sequence[str]) -> list[str]:
        """The services deployed from another configuration than the files give now (or not deployed)."""
        first = next(iter(self.services.values()), None)
        endpoint = ((first or {}).get("Spec", {}).get("EndpointSpec") or {}).get("Mode", "vip")
        modes = Modes("dnsrr", "host") if endpoint == "dnsrr" else Modes("vip", "ingress")
        plan = export(self.project, modes, list(selected) or None)
        label = {"label": f"{STACK_LABEL}={self.project.name}"}
        stored = [*self.client.secrets.list(filters=label), *self.client.configs.list(filters=label)]
        ids = {b.name: b.id for b in stored}
        blobs = {f"secrets:{b.key}": (ids.get(b.name, ""), b.name) for b in plan.secrets}
        blobs |= {f"configs:{b.key}": (ids.get(b.name, ""), b.name) for b in plan.configs}
        found = []
        for name, wanted in plan.services.items():
            deployed = self.services.get(name)
            if deployed is None:
                found.append(f"{name} not deployed")
                continue
            spec = deployed["Spec"]
            image = str(spec["TaskTemplate"]["ContainerSpec"]["Image"]).split("@", 1)[0]
            refs = [f"secrets:{r.key}" for r in wanted.secrets] + [f"configs:{r.key}" for r in wanted.configs]
            missing = not all(blobs[ref][0] for ref in refs)  # a secret or config of new content: not in the swarm
            if missing or spec["Labels"].get(HASH_LABEL) != servicespec.body(wanted, image, blobs, spec).hash:
                found.append(f"{name} (its settings)")
            replicas = (spec.get("Mode") or {}).get("Replicated", {}).get("Replicas")
            if wanted.mode == "replicated" and replicas != wanted.replicas:
                found.append(f"{name} (replicas {replicas}, the files say {wanted.replicas})")
        return found


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0
