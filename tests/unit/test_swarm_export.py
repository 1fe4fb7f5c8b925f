"""The Swarm exporter as data: what each Compose key becomes (networks, jobs, pinning, modes, secrets, updates),
the stack's own files, and the driver's waits and failures against a scripted fake engine."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from unistack import config
from unistack.config.model import Project
from unistack.errors import ConfigError, ServiceFailure
from unistack.targets.swarm import driver, images
from unistack.targets.swarm.export import PINNED, Modes, StackPlan, export

NO_IPVS = Modes("dnsrr", "host")
IPVS = Modes("vip", "ingress")
ROOT = Path(__file__).resolve().parents[2]

COMPOSE = """
name: demo
services:
  db:
    image: postgres
    networks: [data]
    volumes: [db:/var/lib/postgresql/data]
    healthcheck: {test: ["CMD", "pg_isready"], interval: 2s, timeout: 3s, retries: 4, start_period: 10s}
    deploy:
      resources: {limits: {cpus: "0.5", memory: 256m, pids: 50}, reservations: {memory: 64m}}
  migrate:
    image: app
    networks: [data]
    restart: "no"
    depends_on: {db: {condition: service_healthy}}
  app:
    image: app
    networks: [edge, data]
    secrets: [{source: token, target: api_token, mode: 0o400}]
    healthcheck: {test: ["CMD-SHELL", "curl -f localhost"], interval: 1s}
    deploy: {replicas: 3}
    depends_on:
      migrate: {condition: service_completed_successfully}
      db: {condition: service_healthy}
  proxy:
    image: proxy
    networks: [edge]
    ports: ["8080:80"]
    depends_on: {app: {condition: service_healthy}}
networks:
  edge: {}
  data: {internal: true}
volumes:
  db: {}
secrets:
  token: {environment: TOKEN}
"""


def load(tmp_path: Path, text: str = COMPOSE) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return config.load([str(tmp_path / "compose.yaml")], env={"TOKEN": "t0ken"})


def test_layers_networks_and_names(tmp_path: Path) -> None:
    plan = export(load(tmp_path), NO_IPVS)
    assert plan.layers == (("db",), ("migrate",), ("app",), ("proxy",))
    assert {(n.name, n.internal) for n in plan.networks} == {("demo_edge", False), ("demo_data", True)}
    app = plan.services["app"]
    assert app.name == "demo_app" and app.replicas == 3 and app.mode == "replicated"
    assert app.networks == (("demo_edge", ("app",)), ("demo_data", ("app",)))
    assert app.depends_on == {"migrate": "service_completed_successfully", "db": "service_healthy"}


def test_one_shot_is_a_job_and_never_restarts(tmp_path: Path) -> None:
    migrate = export(load(tmp_path), NO_IPVS).services["migrate"]
    assert migrate.mode == "replicated-job" and migrate.is_job
    assert migrate.restart_policy == {"Condition": "none"}
    assert migrate.update_config is None


def test_long_running_restarts_on_any_exit_and_updates_start_first(tmp_path: Path) -> None:
    app = export(load(tmp_path), NO_IPVS).services["app"]
    assert app.restart_policy["Condition"] == "any"
    assert app.update_config is not None and app.update_config["Order"] == "start-first"
    assert app.update_config["FailureAction"] == "rollback"
    assert app.rollback_config is not None and app.rollback_config["FailureAction"] == "pause"
    assert app.container["healthcheck"]["Test"] == ["CMD-SHELL", "curl -f localhost"]


def test_database_pinned_to_its_volume_and_updated_stop_first(tmp_path: Path) -> None:
    db = export(load(tmp_path), NO_IPVS).services["db"]
    assert db.pinned_volumes == ("demo_db",)
    assert db.constraints == (f"node.labels.{PINNED}.demo_db==true",)
    assert db.update_config is not None and db.update_config["Order"] == "stop-first"
    assert db.resources == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 1024**2, "Pids": 50},
        "Reservations": {"MemoryBytes": 64 * 1024**2},
    }
    assert db.container["healthcheck"] == {
        "Test": ["CMD", "pg_isready"],
        "Interval": 2_000_000_000,
        "Timeout": 3_000_000_000,
        "Retries": 4,
        "StartPeriod": 10_000_000_000,
    }


def test_without_ipvs_dnsrr_and_a_global_proxy_on_host_ports(tmp_path: Path) -> None:
    plan = export(load(tmp_path), NO_IPVS)
    proxy = plan.services["proxy"]
    assert proxy.mode == "global" and proxy.replicas is None
    assert proxy.endpoint == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}],
    }
    assert plan.services["app"].endpoint == {"Mode": "dnsrr"}


def test_with_ipvs_vip_and_the_routing_mesh(tmp_path: Path) -> None:
    proxy = export(load(tmp_path), IPVS).services["proxy"]
    assert proxy.mode == "replicated" and proxy.replicas == 1
    assert proxy.endpoint["Mode"] == "vip" and proxy.endpoint["Ports"][0]["PublishMode"] == "ingress"


def test_dnsrr_with_ingress_ports_is_refused_with_the_fix(tmp_path: Path) -> None:
    text = COMPOSE.replace('ports: ["8080:80"]', "ports: [{target: 80, published: 8080, mode: ingress}]")
    with pytest.raises(ConfigError) as caught:
        export(load(tmp_path, text), NO_IPVS)
    assert "mode: host" in str(caught.value)


def test_secrets_are_versioned_swarm_secrets_mounted_as_files(tmp_path: Path) -> None:
    plan = export(load(tmp_path), NO_IPVS)
    (token,) = plan.secrets
    assert token.data == b"t0ken" and token.name.startswith("demo_token-")
    (ref,) = plan.services["app"].secrets
    assert (ref.target, ref.mode) == ("/run/secrets/api_token", 0o400)
    assert "t0ken" not in repr(plan.services["app"].container)


def test_a_global_reader_makes_its_volume_filler_a_global_job(tmp_path: Path) -> None:
    text = """
    name: demo
    services:
      build:
        image: site
        volumes: [dist:/out]
        restart: "no"
      web:
        image: web
        ports: ["80:80"]
        volumes: [{type: volume, source: dist, target: /srv, read_only: true}]
        depends_on: {build: {condition: service_completed_successfully}}
    volumes:
      dist: {}
    """
    plan = export(load(tmp_path, text), NO_IPVS)
    assert plan.services["build"].mode == "global-job"
    assert plan.services["web"].mode == "global" and plan.services["web"].pinned_volumes == ()


def test_the_stacks_production_files_export(tmp_path: Path) -> None:
    project = config.load(
        [str(ROOT / "stack" / "compose.yaml")],
        env={"POSTGRES_PASSWORD": "pw", "PATH": "/usr/bin"},
        env_name="production",
    )
    plan = export(project, NO_IPVS)
    assert plan.layers[0] == ("db", "frontend-build") and plan.layers[-1] == ("proxy",)
    assert plan.services["migrate"].mode == "replicated-job"
    assert plan.services["frontend-build"].mode == "global-job"  # every node's proxy reads frontend-dist
    assert plan.services["proxy"].mode == "global"
    db = plan.services["db"].container
    assert db["read_only"] is True and db["cap_drop"] == ["ALL"] and db["user"] == "10004:10004"
    assert {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 16 * 1024**2, "Mode": 0o1777}} in db[
        "mounts"
    ]


def test_registry_reference_is_the_image_id() -> None:
    assert images.reference("reg:5000", "stack-db:latest", "sha256:" + "ab" * 32) == ("reg:5000/stack-db", "ab" * 6)
    assert images.reference("reg:5000/", "localhost:5000/x", "sha256:" + "cd" * 32) == (
        "reg:5000/localhost:5000/x",
        "cd" * 6,
    )


# ---------------------------------------------------------------------------------------------------- the waits


class FakeApi:
    """The low-level calls the driver's waits make, answering from a script of task lists."""

    def __init__(self, tasks: list[list[dict[str, Any]]]) -> None:
        self.script = tasks
        self.logs = [b"migrating\n", b"relation notes does not exist\n"]

    def services(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        spec = {"Name": filters["name"], "Labels": {}, "TaskTemplate": template("v1")}
        return [{"ID": "x", "Spec": spec, "Version": {"Index": 1}}]

    def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def service_logs(self, name: str, **kwargs: Any) -> list[bytes]:
        return self.logs


class FakeClient:
    def __init__(self, tasks: list[list[dict[str, Any]]]) -> None:
        self.api = FakeApi(tasks)


def template(version: str) -> dict[str, Any]:
    """A TaskTemplate as Swarm reads it back (a task's Spec is a copy of the one it was made from)."""
    return {"ContainerSpec": {"Image": "reg/app:1", "Env": [f"V={version}"]}, "ForceUpdate": 0}


def task(state: str, version: str = "v1", err: str = "", exit_code: int = 0) -> dict[str, Any]:
    return {
        "DesiredState": "running" if state != "complete" else "complete",
        "Status": {"State": state, "Err": err, "ContainerStatus": {"ExitCode": exit_code}},
        "Spec": template(version),
        "UpdatedAt": "2026-12-07T00:00:00Z",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def waiting(tmp_path: Path, tasks: list[list[dict[str, Any]]], service: str) -> tuple[driver.Driver, StackPlan]:
    clock = Clock()
    plan = export(load(tmp_path), NO_IPVS)
    return driver.Driver(FakeClient(tasks), lambda _: None, timeout=30, clock=clock, sleep=clock.sleep), plan


def test_a_job_is_waited_for_until_complete(tmp_path: Path) -> None:
    fake, plan = waiting(tmp_path, [[task("starting")], [task("running")], [task("complete")]], "migrate")
    fake._wait(plan.services["migrate"])
    assert fake.clock() == 1.0  # two polls 0.5 s apart, then complete


def test_a_failed_job_fails_with_its_error_and_last_logs(tmp_path: Path) -> None:
    fake, plan = waiting(tmp_path, [[task("failed", err="task: non-zero exit (3)", exit_code=3)]], "migrate")
    with pytest.raises(ServiceFailure) as caught:
        fake._wait(plan.services["migrate"])
    message = str(caught.value)
    assert "deploying 'migrate' failed: failed: task: non-zero exit (3), exit code 3" in message
    assert "relation notes does not exist" in message


def test_a_service_is_ready_when_its_replicas_run_the_new_spec_and_no_old_task_runs(tmp_path: Path) -> None:
    old = [task("running", version="v0")] * 3
    new = [task("running")] * 3
    fake, plan = waiting(tmp_path, [old, [*old, task("starting")], [*new, old[0]], new], "app")
    fake._wait(plan.services["app"])
    assert fake.clock() == 1.5


def test_a_stuck_layer_fails_at_its_deadline_naming_the_task(tmp_path: Path) -> None:
    fake, plan = waiting(tmp_path, [[task("starting")]], "app")
    with pytest.raises(ServiceFailure) as caught:
        fake._wait(plan.services["app"])
    assert "not ready after 30 s; its latest task: starting" in str(caught.value)
    assert fake.clock() <= 31


# ----------------------------------------------------------------------------- what is carried, what is warned

CARRIED = """
name: demo
services:
  app:
    image: app
    labels: [tier=web]
    logging: {driver: json-file, options: {max-size: 1m}}
    extra_hosts: ["db.local:10.0.0.5", "v6=::1"]
    dns: 10.0.0.53
    dns_search: [example.com]
    dns_opt: [ndots:2]
    group_add: [audio]
    tty: true
    stdin_open: true
    ulimits: {nproc: 100, nofile: {soft: 10, hard: 20}}
    shm_size: 64m
    mem_limit: 100m
    cpus: 0.5
    pids_limit: 10
    mem_reservation: 50m
    init: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    sysctls: {net.core.somaxconn: 1024}
    networks: {edge: {aliases: [web]}}
    deploy:
      labels: {team: a}
      placement: {preferences: [{spread: node.labels.zone}], max_replicas_per_node: 1}
networks:
  edge: {}
"""


def test_every_carried_key_reaches_the_service_spec(tmp_path: Path) -> None:
    plan = export(load(tmp_path, CARRIED), NO_IPVS)
    assert plan.warnings == ()
    app = plan.services["app"]
    spec = app.container
    assert spec["labels"]["tier"] == "web" and spec["labels"]["com.docker.stack.service"] == "app"
    assert app.log_driver == {"Name": "json-file", "Options": {"max-size": "1m"}}
    assert spec["hosts"] == {"db.local": "10.0.0.5", "v6": "::1"}
    assert spec["dns_config"] == {"Nameservers": ["10.0.0.53"], "Search": ["example.com"], "Options": ["ndots:2"]}
    assert spec["groups"] == ["audio"] and spec["tty"] is True and spec["open_stdin"] is True
    assert app.container_fields == {
        "Ulimits": [{"Name": "nproc", "Soft": 100, "Hard": 100}, {"Name": "nofile", "Soft": 10, "Hard": 20}]
    }
    shm = {"Type": "tmpfs", "Target": "/dev/shm", "TmpfsOptions": {"SizeBytes": 64 * 1024**2, "Mode": 0o1777}}
    assert shm in spec["mounts"]
    assert app.resources == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 100 * 1024**2, "Pids": 10},
        "Reservations": {"MemoryBytes": 50 * 1024**2},
    }
    assert spec["init"] is True and spec["cap_add"] == ["CAP_NET_ADMIN"] and spec["cap_drop"] == ["ALL"]
    assert spec["sysctls"] == {"net.core.somaxconn": "1024"}
    assert app.networks == (("demo_edge", ("app", "web")),)
    assert app.labels == {"team": "a"}
    assert app.preferences == (("spread", "node.labels.zone"),) and app.max_replicas == 1


def test_deploy_resources_win_over_the_services_own(tmp_path: Path) -> None:
    limits = "      labels: {team: a}\n      resources: {limits: {memory: 1g}}"
    text = CARRIED.replace("      labels: {team: a}", limits)
    app = export(load(tmp_path, text), NO_IPVS).services["app"]
    assert app.resources["Limits"]["MemoryBytes"] == 1024**3 and app.resources["Limits"]["NanoCPUs"] == 500_000_000


def test_driver_sends_the_carried_fields(tmp_path: Path) -> None:
    app = export(load(tmp_path, CARRIED), NO_IPVS).services["app"]
    sent: dict[str, Any] = {}

    class Api:
        def services(self, filters: dict[str, str]) -> list[Any]:
            return []

        def create_service(self, task: dict[str, Any], **arguments: Any) -> None:
            sent.update(task=task, **arguments)

    class Client:
        api = Api()

    driver.Driver(Client(), lambda _: None)._apply(app, "reg/app:1", {})
    task = sent["task"]
    assert task["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "1m"}}
    assert task["ContainerSpec"]["Ulimits"][1] == {"Name": "nofile", "Soft": 10, "Hard": 20}
    assert task["ContainerSpec"]["Hosts"] == ["10.0.0.5 db.local", "::1 v6"]
    assert task["Placement"]["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    assert task["Placement"]["MaxReplicas"] == 1
    assert sent["labels"]["team"] == "a"


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ("security_opt: [no-new-privileges:true]", "services.app.security_opt: not carried: no seccomp"),
        ("devices: [/dev/fuse]", "services.app.devices: not carried"),
        ("privileged: true", "services.app.privileged: not carried"),
        ("ipc: host", "services.app.ipc: not carried"),
        ("pid: host", "services.app.pid: not carried"),
        ("userns_mode: host", "services.app.userns_mode: not carried"),
        ("cgroup_parent: x", "services.app.cgroup_parent: not carried"),
        ("container_name: app1", "services.app.container_name: not carried"),
        ("network_mode: host", "services.app.network_mode: not carried"),
        ("mac_address: 02:42:ac:11:00:02", "services.app.mac_address: not carried"),
        ("oom_score_adj: 100", "services.app.oom_score_adj: not carried"),
        ("platform: linux/arm64", "services.app.platform: not carried"),
        ("cpu_shares: 512", "services.app.cpu_shares: not carried: no field for it"),
        ("links: [db]", "services.app.links: not carried"),
        ("healthcheck: {test: [CMD, 'true'], start_interval: 1s}", "services.app.healthcheck.start_interval"),
        ("ports: ['127.0.0.1:8080:80']", "services.app.ports[0].host_ip: not carried"),
        ("networks: {default: {ipv4_address: 10.5.0.5}}", "services.app.networks.default.ipv4_address"),
        (
            "volumes: [{type: bind, source: /srv, target: /srv, bind: {propagation: rshared}}]",
            "services.app.volumes[0].bind: not carried",
        ),
        (
            "deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}",
            "services.app.deploy.resources.reservations.devices",
        ),
    ],
)
def test_what_the_swarm_cannot_carry_is_warned_naming_service_and_key(tmp_path: Path, lines: str, key: str) -> None:
    text = f"name: demo\nservices:\n  app:\n    image: app\n    {lines}\n"
    warnings = export(load(tmp_path, text), IPVS).warnings
    assert len(warnings) == 1 and warnings[0].startswith(key), warnings


def test_what_unistack_consumes_or_means_nothing_is_not_warned(tmp_path: Path) -> None:
    text = """
    name: demo
    services:
      app:
        image: app
        build: .
        expose: ["80"]
        pull_policy: always
        profiles: [web]
        network_mode: none
        x-custom: 1
    """
    assert export(load(tmp_path, text), IPVS, ["app"]).warnings == ()


def test_deploy_strict_refuses_what_cannot_be_carried_before_touching_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from unistack.cli import main

    (tmp_path / "compose.yaml").write_text("name: demo\nservices:\n  app:\n    image: app\n    privileged: true\n")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")  # nothing answers there
    with pytest.raises(SystemExit) as done:
        main(["-f", str(tmp_path / "compose.yaml"), "deploy", "--strict"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "--strict" in err and "services.app.privileged: not carried" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- validate --target swarm: the rows


class _Node:
    def __init__(self, address: str, state: str = "ready") -> None:
        self.attrs = {"Status": {"Addr": address, "State": state}, "Description": {"Hostname": "n"}}


class _ReadBack:
    """A swarm as validating.Deployment reads it: services, tasks, nodes, logs."""

    def __init__(self, services: list[dict[str, Any]], tasks: list[dict[str, Any]], nodes: list[_Node]) -> None:
        class Api:
            def services(self, filters: dict[str, str]) -> list[dict[str, Any]]:
                return services

            def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
                return tasks

            def service_logs(self, name: str, **_: Any) -> list[bytes]:
                return [b"boom: cannot connect\n"]

        class Nodes:
            def list(self) -> list[_Node]:
                return nodes

        class Blobs:
            def list(self, filters: dict[str, str]) -> list[Any]:
                return []

        self.api, self.nodes, self.secrets, self.configs = Api(), Nodes(), Blobs(), Blobs()

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}


def _deployed(name: str, mode: dict[str, Any], checked: bool = True, ports: list[Any] | None = None) -> dict[str, Any]:
    container = {"Image": "reg/x:1@sha256:ab", "Healthcheck": {"Test": ["CMD", "true"]} if checked else {}}
    return {
        "ID": name,
        "Spec": {
            "Name": f"demo_{name}",
            "Labels": {"com.docker.stack.service": name},
            "Mode": mode,
            "TaskTemplate": {"ContainerSpec": container},
            "EndpointSpec": {"Mode": "dnsrr", "Ports": ports or []},
        },
    }


def _task(service: str, state: str, err: str = "", at: str = "2026-01-01T00:00:00.000000Z") -> dict[str, Any]:
    status = {"State": state, "Timestamp": at, "Err": err, "ContainerStatus": {"ExitCode": 3 if err else 0}}
    return {"ServiceID": service, "DesiredState": "running", "Status": status, "UpdatedAt": at, "CreatedAt": at}


def test_swarm_rows_name_what_is_broken_with_its_task_error_and_logs(tmp_path: Path) -> None:
    from unistack.targets.swarm.validating import Deployment

    services = [
        _deployed("app", {"Replicated": {"Replicas": 3}}),
        _deployed("db", {"Replicated": {"Replicas": 1}}),
        _deployed("migrate", {"ReplicatedJob": {}}, checked=False),
        _deployed("proxy", {"Global": {}}, ports=[{"TargetPort": 80, "PublishedPort": 8080, "Protocol": "tcp"}]),
    ]
    tasks = [
        _task("app", "failed", "task: non-zero exit (1)"),
        _task("db", "running"),
        _task("migrate", "complete"),
        _task("proxy", "running"),
    ]
    client = _ReadBack(services, tasks, [_Node("10.0.0.1"), _Node("10.0.0.2", "down")])
    deployment = Deployment(client, load(tmp_path), now=0.0)
    rows = {r.service: r for r in deployment.rows("10.0.0.2", 300.0)}
    assert rows["app"].state == "unhealthy" and rows["app"].restarts == 1
    assert "non-zero exit (1)" in rows["app"].reason and "boom: cannot connect" in rows["app"].reason
    assert rows["db"].state == "healthy" and rows["migrate"].state == "exited" and rows["migrate"].exit_code == 0
    (port,) = rows["proxy"].ports
    assert (port.host_ip, port.host_port) == ("10.0.0.2", 8080)
    assert deployment.addresses() == ["10.0.0.1", "10.0.0.2"] and deployment.down() == ["10.0.0.2 (n: down)"]
    services[0]["Spec"]["Mode"] = {"Replicated": {"Replicas": 0}}
    scaled = Deployment(client, load(tmp_path), now=0.0).rows("10.0.0.1", 300.0)
    assert next(r for r in scaled if r.service == "app").reason == "scaled to 0 replicas: no task runs"
    # the drift: no hash label on these, and replicas differ from the file's
    changed = Deployment(client, load(tmp_path), now=0.0).changed([])
    assert "app (replicas 0, the files say 3)" in changed and "db (its settings)" in changed
