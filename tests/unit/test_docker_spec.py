"""The Docker runtime's pure parts: Compose names and labels, networks and volumes, create arguments, refusals."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from unistack import config
from unistack.config.model import Healthcheck, Project
from unistack.errors import ConfigError, NotSupported, RuntimeFailure
from unistack.runtimes.base import Handle, StopResult
from unistack.runtimes.docker import resources, spec
from unistack.runtimes.docker.engine import parse_time_ns
from unistack.runtimes.docker.logs import split_stamped
from unistack.runtimes.docker.runtime import DockerRuntime


def load(tmp_path: Path, text: str, name: str = "demo") -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return config.load([str(tmp_path / "compose.yaml")], env={"SECRET": "s3"}, project_name=name)


def plan(tmp_path: Path, text: str, service: str = "app") -> spec.ContainerPlan:
    project = load(tmp_path, text)
    return spec.container_plan(project, project.services[service])


def test_names_follow_compose(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          app: {image: "busybox:1", networks: [back, shared, named]}
          built: {build: ./x}
          fixed: {image: busybox, container_name: exactly-this}
        networks:
          back: {}
          shared: {external: true}
          named: {name: custom-net}
        volumes:
          data: {}
          kept: {external: true}
          other: {name: custom-volume}
        """,
    )
    services = project.services
    assert resources.container_name(project, services["app"]) == "demo-app-1"
    assert resources.container_name(project, services["fixed"]) == "exactly-this"
    assert resources.image_name(project, services["app"]) == "busybox:1"
    assert resources.image_name(project, services["built"]) == "demo-built"
    assert [resources.network_name(project, key) for key in ("default", "back", "shared", "named")] == [
        "demo_default",
        "demo_back",
        "shared",
        "custom-net",
    ]
    assert [resources.volume_name(project, key) for key in ("data", "kept", "other")] == [
        "demo_data",
        "kept",
        "custom-volume",
    ]


def test_create_arguments_for_a_full_service(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    result = plan(
        tmp_path,
        """
        services:
          app:
            image: busybox:1
            command: echo "hello world"
            entrypoint: ""
            environment: {A: "1", FROM_ENV: "${SECRET}"}
            working_dir: /srv
            user: "1000:1000"
            ports: ["8080:80", "127.0.0.1::81", "127.0.0.1:9000:90/udp", "82"]
            networks:
              back: {aliases: [api], priority: 1}
              front: {priority: 10}
            volumes:
              - data:/data:ro
              - ./src:/src
              - /cache
              - {type: tmpfs, target: /run/x, tmpfs: {size: 1m, mode: "1777"}}
            tmpfs: ["/tmp:size=64k", /var/run]
            read_only: true
            cap_drop: [ALL]
            cap_add: [NET_BIND_SERVICE]
            security_opt: ["no-new-privileges:true"]
            init: true
            extra_hosts: ["a=10.0.0.1", "b:10.0.0.2"]
            ulimits: {nofile: {soft: 10, hard: 20}, nproc: 5}
            sysctls: ["net.core.somaxconn=1024"]
            labels: ["team=core"]
            stop_signal: SIGINT
            shm_size: 64m
            deploy:
              resources:
                limits: {cpus: "0.25", memory: 128M, pids: 40}
                reservations: {memory: 64M, cpus: "0.1"}
            logging: {driver: json-file, options: {max-size: 1m}}
            secrets: [token]
            restart: always
            healthcheck: {test: ["CMD", "true"]}
        networks: {back: {}, front: {}}
        volumes: {data: {}}
        secrets: {token: {file: ./secret.txt}}
        """,
    )
    create = result.create
    assert result.name == create["name"] == "demo-app-1" and result.image == create["image"] == "busybox:1"
    assert create["command"] == ["echo", "hello world"]
    assert create["entrypoint"] == [""]
    assert create["environment"] == {"A": "1", "FROM_ENV": "s3"}
    assert (create["working_dir"], create["user"], create["stop_signal"]) == ("/srv", "1000:1000", "SIGINT")
    assert create["ports"] == {
        "80/tcp": [8080],
        "81/tcp": [("127.0.0.1",)],
        "90/udp": [("127.0.0.1", 9000)],
        "82/tcp": [None],
    }
    assert [(a.network, a.aliases) for a in result.attachments] == [
        ("demo_front", ("app",)),
        ("demo_back", ("app", "api")),
    ]
    assert create["network"] == "demo_front"
    assert create["networking_config"] == {"demo_front": {"Aliases": ["app"]}}
    data, source, anonymous, tmpfs, secret = create["mounts"]
    assert (data["Type"], data["Source"], data["Target"], data["ReadOnly"]) == ("volume", "demo_data", "/data", True)
    assert (source["Type"], source["Source"]) == ("bind", str(tmp_path / "src"))
    assert anonymous["Source"] is None and anonymous["VolumeOptions"]["Labels"]["com.docker.compose.project"] == "demo"
    assert tmpfs["TmpfsOptions"] == {"SizeBytes": 1024 * 1024, "Mode": 0o1777}
    assert (secret["Source"], secret["Target"], secret["ReadOnly"]) == (
        str(tmp_path / "secret.txt"),
        "/run/secrets/token",
        True,
    )
    assert result.host_paths == (str(tmp_path / "src"),)
    assert create["tmpfs"] == {"/tmp": "size=64k", "/var/run": ""}
    assert create["read_only"] is True and create["init"] is True
    assert create["cap_drop"] == ["ALL"] and create["cap_add"] == ["NET_BIND_SERVICE"]
    assert create["security_opt"] == ["no-new-privileges:true"]
    assert create["extra_hosts"] == ["a:10.0.0.1", "b:10.0.0.2"]
    assert [dict(u) for u in create["ulimits"]] == [
        {"Name": "nofile", "Soft": 10, "Hard": 20},
        {"Name": "nproc", "Soft": 5, "Hard": 5},
    ]
    assert create["sysctls"] == {"net.core.somaxconn": "1024"}
    assert create["nano_cpus"] == 250_000_000 and create["mem_limit"] == 128 * 1024**2
    assert create["pids_limit"] == 40 and create["mem_reservation"] == 64 * 1024**2
    assert create["shm_size"] == 64 * 1024**2
    assert create["log_config"]["Type"] == "json-file"
    assert create["healthcheck"] == {"test": ["NONE"]}  # the engine probes; the image's HEALTHCHECK is off
    assert "restart_policy" not in create  # the engine restarts
    labels = create["labels"]
    assert labels["team"] == "core"
    assert labels[resources.PROJECT_LABEL] == "demo" and labels[resources.SERVICE_LABEL] == "app"
    assert labels[resources.NUMBER_LABEL] == "1" and labels[resources.ONEOFF_LABEL] == "False"
    assert labels[resources.STATE_DIR_LABEL] == str(tmp_path / ".unistack" / "demo")
    assert labels[resources.CONFIG_FILES_LABEL] == str(tmp_path / "compose.yaml")
    assert labels[resources.WORKING_DIR_LABEL] == str(tmp_path)
    assert labels[resources.HASH_LABEL] == result.config_hash


def test_the_hash_follows_the_container_not_the_engine_settings(tmp_path: Path) -> None:
    base = "services:\n  app:\n    image: busybox\n    environment: {A: '1'}\n"
    first = plan(tmp_path, base).config_hash
    assert plan(tmp_path, base).config_hash == first
    engine_only = base + "    restart: always\n    stop_grace_period: 3s\n    healthcheck: {test: [CMD, 'true']}\n"
    assert plan(tmp_path, engine_only).config_hash == first
    assert plan(tmp_path, base.replace("'1'", "'2'")).config_hash != first
    assert plan(tmp_path, base + "    read_only: true\n").config_hash != first


def test_network_modes(tmp_path: Path) -> None:
    text = """
    services:
      db: {image: busybox}
      app: {image: busybox, network_mode: "service:db"}
      off: {image: busybox, network_mode: none}
    """
    assert plan(tmp_path, text).create["network_mode"] == "container:demo-db-1"
    offline = plan(tmp_path, text, "off")
    assert offline.create["network_mode"] == "none" and offline.attachments == ()
    project = load(tmp_path, text)
    assert resources.used_networks(project) == ["default"]  # only db joins a network


def test_networks_and_volumes_to_create(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          app: {image: busybox, networks: [private, shared], volumes: [data:/data, kept:/kept]}
          web: {image: busybox}
        networks:
          private: {internal: true, labels: {tier: back}}
          shared: {external: true}
          unused: {}
        volumes:
          data: {}
          kept: {external: true}
          unused: {}
        """,
    )
    networks = {p.key: p for p in resources.network_plans(project)}
    assert list(networks) == ["private", "shared", "default"]
    assert networks["private"].create["internal"] is True
    assert networks["private"].create["labels"] == {
        "tier": "back",
        resources.PROJECT_LABEL: "demo",
        resources.STATE_DIR_LABEL: str(project.state_dir),
        resources.NETWORK_LABEL: "private",
    }
    assert networks["shared"].external and networks["shared"].create == {}
    assert networks["default"].create["name"] == "demo_default"
    volumes = {p.key: p for p in resources.volume_plans(project)}
    assert list(volumes) == ["data", "kept"]
    assert volumes["data"].create["labels"][resources.VOLUME_LABEL] == "data" and volumes["kept"].external


def test_what_cannot_be_carried_out_is_refused_all_at_once(tmp_path: Path) -> None:
    text = """
    services:
      app:
        image: busybox
        links: [db]
        gpus: all
        network_mode: host
        networks: [back]
        ports: ["80:80"]
        pull_policy: always
        volumes: [{type: bind, source: ./x, target: /x, bind: {selinux: z}}]
        deploy: {replicas: 2, resources: {reservations: {devices: [{capabilities: [gpu]}]}}}
        secrets: [{source: token, mode: 0400}]
      db: {image: busybox}
    networks: {back: {}}
    secrets: {token: {file: ./t}}
    """
    with pytest.raises(NotSupported) as refused:
        plan(tmp_path, text)
    message = str(refused.value)
    for key in ("links", "gpus", "network_mode cannot be combined", "ports cannot be published", "pull_policy"):
        assert key in message
    assert "selinux" in message and "deploy.replicas" in message  # an undeclared volume: the loader refuses it
    assert "reservations.devices" in message and "secrets[0].mode" in message
    problems = spec.check_for_docker_runtime(load(tmp_path, text))
    keys = {p.key for p in problems}
    assert {"services.app.links", "services.app.gpus", "services.app.deploy.replicas"} <= keys
    assert not any(p.key and p.key.startswith("services.db") for p in problems)


def test_a_service_needs_an_image_or_a_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither an image nor a build"):  # refused by the loader, as Compose does
        plan(tmp_path, "services:\n  app:\n    command: [sleep, '1']\n")
    process_only = "services:\n  app:\n    x-unistack: {process: {command: [sleep, '1']}}\n"
    with pytest.raises(NotSupported, match="image is missing"):  # a host-process service, asked to run on docker
        plan(tmp_path, process_only)


def test_engine_times_and_stamped_lines() -> None:
    assert parse_time_ns("2024-05-01T10:00:00.123456789Z") == 1714557600_123456789
    assert parse_time_ns("2024-05-01T12:00:00.5+02:00") == 1714557600_500000000
    assert parse_time_ns("2024-05-01T10:00:00Z") == 1714557600_000000000
    assert split_stamped("2024-05-01T10:00:00.000000001Z hello world") == (1714557600_000000001, "hello world")
    assert split_stamped("no stamp here") == (0, "no stamp here")
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")


async def test_no_engine_is_a_clear_failure(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  app: {image: busybox}\n")
    runtime = DockerRuntime({"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    with pytest.raises(RuntimeFailure) as failed:
        await runtime.prepare(project)
    message = str(failed.value)
    assert "DOCKER_HOST" in message and "no-such.sock" in message
    assert "start dockerd" in message and "--runtime process" in message
    assert await runtime.strays(project.state_dir, set()) == []  # no engine: nothing of ours can run on it
    handle = Handle(service="app", ident="0" * 64, started_at=0.0, record={"id": "0" * 64})
    check = Healthcheck(kind="CMD", test=("true",), timeout=5)
    probe = await runtime.probe(project, project.services["app"], handle, check)
    assert not probe.ok and "no Docker engine answers" in probe.output
    assert await runtime.stop(handle, "SIGTERM", 1) == StopResult(killed=False, exit_code=None)
    assert await runtime.adopt(project, project.services["app"], handle.record) is None
    runtime.close()
