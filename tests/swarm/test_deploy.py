"""``unistack deploy --target swarm`` on a real 3-node swarm (conftest: one per session): the order Swarm ignores
kept (db healthy, then the migrate job complete, then the api, then the proxy on every node), images through the
registry, a redeploy that changes nothing, a label-only change that makes no new tasks, a worker lost and its tasks
rescheduled while the app answers, the failures a stuck layer reports, and undeploy leaving nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.swarm import harness
from tests.swarm.conftest import unistack

pytestmark = pytest.mark.swarm

HERE = Path(__file__).parent
SMALL = str(HERE / "small" / "compose.yaml")
BROKEN = str(HERE / "broken" / "compose.yaml")


def _tasks(swarm: harness.Swarm, service: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = swarm.manager.client().api.tasks(filters={"service": service})
    return tasks


def _get(swarm: harness.Swarm, address: str) -> str:
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", sys.executable, "-c",
         f"import urllib.request; print(urllib.request.urlopen('http://{address}:8080/', timeout=5).read().decode())"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip()[-200:]}"


def _wait(what: str, ok: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed(swarm: harness.Swarm) -> Iterator[subprocess.CompletedProcess[str]]:
    done = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, "--timeout", "120")
    try:
        yield done
    finally:
        unistack(swarm, "-f", SMALL, "undeploy", "-v")


def test_deploy_keeps_the_order_and_waits(swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str]) -> None:
    assert deployed.returncode == 0, deployed.stderr
    said = deployed.stdout + deployed.stderr
    assert said.index("db: created, healthy") < said.index("migrate: completed") < said.index("api: created")
    assert said.index("api: created, healthy") < said.index("proxy: created, healthy")
    (db,) = [t for t in _tasks(swarm, "small_db") if t["DesiredState"] == "running"]
    (migrate,) = _tasks(swarm, "small_migrate")
    assert migrate["Status"]["State"] == "complete"
    api = [t for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"]
    assert len(api) == 2
    # ISO 8601 in UTC, same format: string order is time order
    assert db["Status"]["Timestamp"] < migrate["CreatedAt"], "migrate was created before db was healthy"
    assert migrate["Status"]["Timestamp"] <= min(t["CreatedAt"] for t in api), "api was created before migrate ended"
    # every image came from the project's registry
    assert all(t["Spec"]["ContainerSpec"]["Image"].startswith(swarm.registry) for t in [db, migrate, *api])
    # the proxy answers on every node's address (host-mode port of a global service), through the api (dnsrr)
    for node in swarm.nodes:
        assert _get(swarm, node.address).startswith("ok from"), node.name
    # the data network is internal; the secret is a Swarm secret, not an environment variable
    client = swarm.manager.client()
    assert client.networks.get("small_data").attrs["Internal"] is True
    (proxy,) = client.api.services(filters={"name": "small_proxy"})
    container = proxy["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert [s["File"]["Name"] for s in container["Secrets"]] == ["/run/secrets/greeting"]
    assert not any("hello" in e for e in container.get("Env", []))


def test_ps_shows_tasks_per_node(swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str]) -> None:
    done = unistack(swarm, "-f", SMALL, "ps", "--target", "swarm", "--format", "json")
    assert done.returncode == 0
    rows = json.loads(done.stdout)
    running = {(r["service"], r["node"]) for r in rows if r["state"] == "running"}
    assert {node for service, node in running if service == "proxy"} == {n.address for n in swarm.nodes}
    assert {r["health"] for r in rows if r["service"] == "api" and r["state"] == "running"} == {"healthy"}
    logs = unistack(swarm, "-f", SMALL, "logs", "--target", "swarm", "--tail", "5", "db", "migrate")
    assert logs.returncode == 0
    assert "db ready" in logs.stdout and "migrated at" in logs.stdout


def test_deploy_again_changes_nothing(swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str]) -> None:
    done = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry)
    assert done.returncode == 0
    assert "0 changed, 4 unchanged" in done.stdout + done.stderr
    assert "pushing" not in done.stdout + done.stderr  # the registry has them already


def test_a_label_only_change_updates_the_service_without_new_tasks(
    swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str]
) -> None:
    before = {t["ID"] for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"}
    done = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"RELEASE": "2"})
    assert done.returncode == 0
    said = done.stdout + done.stderr
    assert "api: updated, healthy" in said and "1 changed, 3 unchanged" in said
    (api,) = swarm.manager.client().api.services(filters={"name": "small_api"})
    assert api["Spec"]["Labels"]["release"] == "2"
    assert {t["ID"] for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"} == before
    again = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"RELEASE": "2"})
    assert again.returncode == 0 and "0 changed, 4 unchanged" in again.stdout + again.stderr


def _load(swarm: harness.Swarm, stop_file: Path) -> subprocess.Popen[str]:
    """Requests through the manager's proxy, from inside its namespace, until ``stop_file`` (bounded: 120 s)."""
    return subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", sys.executable, str(HERE / "load.py"),
         f"http://{swarm.manager.address}:8080/", "120", str(stop_file)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_rolling_update_under_load_drops_nothing(
    swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    stop_file = tmp_path / "stop"
    load = _load(swarm, stop_file)
    try:
        assert _get(swarm, swarm.manager.address).startswith("ok from")
        done = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"API_VERSION": "2"})
    finally:
        stop_file.touch()
        out, _ = load.communicate(timeout=30)
    figures = json.loads(out)
    print(f"rolling update of the api under load: {figures}", file=sys.stderr)
    assert done.returncode == 0
    said = done.stdout + done.stderr
    assert "api: updated, healthy" in said and "db: unchanged" in said and "proxy: unchanged" in said
    api = [t for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"]
    assert len(api) == 2 and all("API_VERSION=2" in t["Spec"]["ContainerSpec"]["Env"] for t in api)
    assert figures["failed"] == 0, figures


def test_a_lost_worker_tasks_run_elsewhere(
    swarm: harness.Swarm, deployed: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    client = swarm.manager.client()
    ids = {n.attrs["Status"]["Addr"]: n.id for n in client.nodes.list()}
    running = [t for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"]
    workers = [n for n in swarm.nodes[1:] if any(t["NodeID"] == ids[n.address] for t in running)]
    victim = workers[0] if workers else swarm.nodes[-1]
    stop_file = tmp_path / "stop"
    load = _load(swarm, stop_file)
    try:
        assert _get(swarm, swarm.manager.address).startswith("ok from")
        harness.stop_node(victim)
        lost = ids[victim.address]

        def rescheduled() -> bool:
            tasks = _tasks(swarm, "small_api")
            elsewhere = [
                t
                for t in tasks
                if t["DesiredState"] == "running" and t["Status"]["State"] == "running" and t["NodeID"] != lost
            ]
            return len(elsewhere) >= 2

        _wait("the api's tasks running on the other nodes", rescheduled, 90)
        _wait("the proxy answering again", lambda: _get(swarm, swarm.manager.address).startswith("ok from"), 30)
    finally:
        stop_file.touch()
        out, _ = load.communicate(timeout=30)
    figures = json.loads(out)
    print(f"node loss under load: {figures}", file=sys.stderr)
    assert figures["tail_ok"], figures
    harness.restart_node(victim)
    _wait(
        "the node back",
        lambda: all(n.attrs["Status"]["State"] == "ready" for n in client.nodes.list()),
        60,
    )


def test_a_failed_job_fails_the_deploy_with_its_error_and_logs(swarm: harness.Swarm) -> None:
    try:
        done = unistack(swarm, "-f", BROKEN, "deploy", "--registry", swarm.registry, "after", "--timeout", "60")
        assert done.returncode == 1
        assert "deploying 'migrate' failed: failed" in done.stderr
        assert "exit code 3" in done.stderr
        assert "relation notes does not exist" in done.stderr
        assert "after" not in {s["Spec"]["Name"].split("_", 1)[1] for s in swarm.manager.client().api.services()}
    finally:
        unistack(swarm, "-f", BROKEN, "undeploy")


def test_a_service_never_healthy_fails_the_deploy(swarm: harness.Swarm) -> None:
    try:
        done = unistack(swarm, "-f", BROKEN, "deploy", "--registry", swarm.registry, "stuck", "--timeout", "60")
        assert done.returncode == 1
        assert "deploying 'stuck' failed" in done.stderr
        assert "stuck starting" in done.stderr
    finally:
        unistack(swarm, "-f", BROKEN, "undeploy")


def test_undeploy_removes_everything(swarm: harness.Swarm) -> None:
    assert unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, "db").returncode == 0
    done = unistack(swarm, "-f", SMALL, "undeploy", "-v")
    assert done.returncode == 0
    client = swarm.manager.client()
    label = {"label": "com.docker.stack.namespace=small"}
    assert not client.api.services(filters=label)
    assert not client.networks.list(filters=label)
    assert not client.secrets.list(filters=label)
    assert not client.volumes.list(filters=label)


def test_refusals_name_the_fix(swarm: harness.Swarm) -> None:
    no_registry = unistack(swarm, "-f", SMALL, "deploy")
    assert no_registry.returncode == 2
    assert "the swarm has 3 nodes" in no_registry.stderr and "--registry HOST:PORT" in no_registry.stderr
    # this machine's own engine is no swarm
    not_a_swarm = unistack(swarm, "-f", SMALL, "deploy", env={"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert not_a_swarm.returncode == 2
    assert "not part of a swarm: run `docker swarm init`" in not_a_swarm.stderr
    assert "Traceback" not in no_registry.stderr + not_a_swarm.stderr
