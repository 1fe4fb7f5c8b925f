"""A deployment read back from the Swarm: per service its mode, tasks per node (state, health, last error), the
rows ``ps --target swarm`` prints. Never changes the swarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unistack.targets.swarm.taskspec import SERVICE_LABEL, STACK_LABEL


@dataclass(frozen=True)
class TaskRow:
    service: str
    node: str  # the node's address (hostnames repeat on machines cloned from one image)
    state: str  # Swarm's task state: running, starting, complete, failed, ...
    desired: str
    health: str  # healthy (a healthchecked task running), starting, none
    error: str
    image: str


def tasks(client: Any, project: str) -> list[TaskRow]:
    nodes = {n.id: n.attrs for n in client.nodes.list()}
    services = {s["ID"]: s for s in client.api.services(filters={"label": f"{STACK_LABEL}={project}"})}
    rows = []
    for task in client.api.tasks(filters={"label": f"{STACK_LABEL}={project}"}):
        service = services.get(task["ServiceID"])
        if service is None:
            continue
        node = nodes.get(task.get("NodeID", ""), {})
        checked = bool(service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Healthcheck", {}).get("Test"))
        state = task["Status"]["State"]
        health = "none" if not checked else {"running": "healthy", "starting": "starting"}.get(state, "none")
        rows.append(
            TaskRow(
                service=service["Spec"]["Labels"].get(SERVICE_LABEL, service["Spec"]["Name"]),
                node=(node.get("Status") or {}).get("Addr", task.get("NodeID", "")[:12]),
                state=state,
                desired=task["DesiredState"],
                health=health,
                error=task["Status"].get("Err", ""),
                image=str(task["Spec"]["ContainerSpec"]["Image"]).split("@", 1)[0],
            )
        )
    return sorted(rows, key=lambda r: (r.service, r.node, r.desired != "running"))


def table(rows: list[TaskRow]) -> str:
    head = ("SERVICE", "NODE", "STATE", "DESIRED", "HEALTH", "ERROR")
    body = [(r.service, r.node, r.state, r.desired, r.health, r.error) for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(head, *body, strict=False)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *body]
    )
