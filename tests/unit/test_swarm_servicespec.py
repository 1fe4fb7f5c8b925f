"""The body a Swarm service is sent as, and its spec hash: the hash follows what would be sent and nothing else
(unistack's own record of a service can change, as in an upgrade, without rolling anything), it is a label of the
service and never of the task template (so a new hash alone makes no new tasks in Swarm), and a task counts as
current when it was made from the service's task template."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

from unistack import config
from unistack.targets.swarm import driver, servicespec
from unistack.targets.swarm.export import Modes, SwarmService, export

COMPOSE = """
name: demo
services:
  app:
    image: app
    environment: {GREETING: "${GREETING:-hello}"}
    secrets: [token]
    healthcheck: {test: ["CMD-SHELL", "true"], interval: 1s}
    deploy: {replicas: 2, labels: {release: "${RELEASE:-1}"}}
secrets:
  token: {environment: TOKEN}
"""
BLOBS = {"secrets:token": ("id-1", "demo_token-abc")}


def app(tmp_path: Path, **env: str) -> SwarmService:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE).lstrip("\n"))
    project = config.load([str(tmp_path / "compose.yaml")], env={"TOKEN": "t0ken", **env})
    return export(project, Modes("dnsrr", "host")).services["app"]


def test_the_hash_follows_what_is_sent_not_unistacks_record(tmp_path: Path) -> None:
    service = app(tmp_path)
    first = servicespec.body(service, "reg/app:1", BLOBS)
    # fields the driver never sends (the dependencies it waits for, how it waits): the same body, the same hash
    other = dataclasses.replace(service, depends_on={"db": "service_healthy"}, healthchecked=False)
    assert servicespec.body(other, "reg/app:1", BLOBS) == first
    assert first.arguments["labels"][servicespec.HASH_LABEL] == first.hash
    assert servicespec.HASH_LABEL not in first.task["ContainerSpec"].get("Labels", {})


def test_a_service_label_changes_the_hash_but_not_the_task_template(tmp_path: Path) -> None:
    before = servicespec.body(app(tmp_path), "reg/app:1", BLOBS)
    labelled = servicespec.body(app(tmp_path, RELEASE="2"), "reg/app:1", BLOBS)
    assert labelled.hash != before.hash and labelled.arguments["labels"]["release"] == "2"
    assert labelled.task == before.task  # Swarm makes no new tasks for it


def test_a_real_change_changes_the_task_template(tmp_path: Path) -> None:
    before = servicespec.body(app(tmp_path), "reg/app:1", BLOBS)
    for changed in (
        servicespec.body(app(tmp_path, GREETING="hi"), "reg/app:1", BLOBS),
        servicespec.body(app(tmp_path), "reg/app:2", BLOBS),
        servicespec.body(app(tmp_path), "reg/app:1", {"secrets:token": ("id-2", "demo_token-def")}),
    ):
        assert changed.hash != before.hash and changed.task != before.task


def test_an_older_deployments_task_label_is_kept_so_nothing_rolls(tmp_path: Path) -> None:
    deployed = {"TaskTemplate": {"ContainerSpec": {"Labels": {servicespec.HASH_LABEL: "0123abcd"}}}}
    kept = servicespec.body(app(tmp_path), "reg/app:1", BLOBS, deployed)
    assert kept.task["ContainerSpec"]["Labels"][servicespec.HASH_LABEL] == "0123abcd"
    assert servicespec.body(app(tmp_path), "reg/app:1", BLOBS, kept.arguments | {"TaskTemplate": kept.task}) == kept


def test_a_task_is_current_when_made_from_the_template_placement_aside() -> None:
    template: dict[str, Any] = {"ContainerSpec": {"Image": "a", "Env": ["V=1"]}, "Placement": {}, "ForceUpdate": 0}
    made = {"Spec": {**template, "Placement": {"Constraints": ["node.role==manager"]}}}
    assert servicespec.current(made, template)
    assert not servicespec.current({"Spec": {**template, "ForceUpdate": 1}}, template)
    assert not servicespec.current({"Spec": {**template, "ContainerSpec": {"Image": "a"}}}, template)


def test_the_driver_leaves_a_service_of_the_same_hash_alone_and_updates_a_label_change(tmp_path: Path) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    body = servicespec.body(app(tmp_path), "reg/app:1", BLOBS)
    deployed = {
        "ID": "s1",
        "Version": {"Index": 7},
        "Spec": {**body.arguments, "Name": "demo_app", "TaskTemplate": body.task},
    }
    deployed["Spec"]["Labels"] = deployed["Spec"].pop("labels")
    deployed["Spec"]["Mode"] = {"Replicated": {"Replicas": 2}}

    class Api:
        def services(self, filters: dict[str, str]) -> list[Any]:
            return [deployed]

        def update_service(self, service_id: str, version: int, task_template: dict[str, Any], **kw: Any) -> None:
            sent.append((service_id, {"task": task_template, **kw}))

    class Client:
        api = Api()

    fake = driver.Driver(Client(), lambda _: None)
    assert fake._apply(app(tmp_path), "reg/app:1", BLOBS) == "unchanged" and not sent
    assert fake._apply(app(tmp_path, RELEASE="2"), "reg/app:1", BLOBS) == "updated"
    ((service_id, update),) = sent
    assert service_id == "s1" and update["task"] == body.task and update["labels"]["release"] == "2"
