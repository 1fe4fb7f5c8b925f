"""Names, labels, networks, volumes, isolation settings and ports, as Compose makes them, on a real engine."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import docker.errors
import pytest

from unistack.config.model import Healthcheck, Project
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import Handle
from unistack.runtimes.docker.runtime import DockerRuntime

from .conftest import ProjectFactory
from .support import inspect, python_service, requires_engine, until

pytestmark = [pytest.mark.docker, requires_engine()]

SLEEPER = 'import time\nprint("up", flush=True)\ntime.sleep(600)\n'
# python3-minimal has no socketserver or http: a bare socket server that greets every connection
HELLO_SERVER = """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8000))
server.listen()
print("listening", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello")
    connection.close()
"""


async def run_python(runtime: DockerRuntime, project: Project, handle: Handle, code: str) -> tuple[bool, str]:
    """Run python code inside a running container (through the health-probe path)."""
    check = Healthcheck(kind="CMD", test=("python3", "-c", code), timeout=15)
    result = await runtime.probe(project, project.services[handle.service], handle, check)
    return result.ok, result.output.strip()


async def start_all(runtime: DockerRuntime, project: Project) -> dict[str, Handle]:
    await runtime.prepare(project)
    return {name: await runtime.start(project, service) for name, service in project.services.items()}


async def test_names_and_labels_are_composes(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    project = projects(
        "services:" + python_service("app", SLEEPER, extra="    volumes: [data:/data]\n") + "volumes:\n  data: {}\n"
    )
    handles = await start_all(runtime, project)
    info = inspect(client, handles["app"].ident)
    assert info["Name"] == f"/{project.name}-app-1"
    labels = info["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == project.name
    assert labels["com.docker.compose.service"] == "app"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.project.working_dir"] == str(project.working_dir)
    assert labels["com.docker.compose.project.config_files"] == str(project.files[0])
    assert labels["dev.unistack.state_dir"] == str(project.state_dir)
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert labels["com.docker.compose.image"] == client.images.get(info["Config"]["Image"]).id

    endpoints = info["NetworkSettings"]["Networks"]
    assert list(endpoints) == [f"{project.name}_default"]
    assert "app" in endpoints[f"{project.name}_default"]["Aliases"]
    network = client.networks.get(f"{project.name}_default")
    assert network.attrs["Labels"]["com.docker.compose.project"] == project.name
    assert network.attrs["Labels"]["com.docker.compose.network"] == "default"
    volume = client.volumes.get(f"{project.name}_data")
    assert volume.attrs["Labels"]["com.docker.compose.volume"] == "data"
    assert [m["Name"] for m in info["Mounts"] if m["Type"] == "volume"] == [f"{project.name}_data"]

    assert info["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    assert info["Config"]["Healthcheck"]["Test"] == ["NONE"]

    async def printed() -> bool:
        return (await runtime.tail(project, "app", 5)) == ["up"]

    await until(printed, message="the app's first line in its log")  # the container may still be starting Python


async def test_two_projects_run_side_by_side(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    compose = (
        "services:" + python_service("app", SLEEPER, extra="    volumes: [data:/data]\n") + "volumes:\n  data: {}\n"
    )
    first, second = projects(compose), projects(compose)
    one, two = await start_all(runtime, first), await start_all(runtime, second)
    assert one["app"].ident != two["app"].ident
    assert inspect(client, one["app"].ident)["Name"] != inspect(client, two["app"].ident)["Name"]
    await runtime.stop(one["app"], "SIGKILL", 0)
    await runtime.cleanup(first, remove_volumes=True)
    assert inspect(client, two["app"].ident)["State"]["Running"]
    client.networks.get(f"{second.name}_default")
    client.volumes.get(f"{second.name}_data")
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(f"{first.name}_default")


async def test_internal_network_has_no_way_out(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects(
        "services:"
        + python_service("inside", HELLO_SERVER, extra="    networks: [private]\n")
        + python_service("neighbour", SLEEPER, extra="    networks: [private]\n")
        + python_service("outsider", HELLO_SERVER, extra="    networks: [public]\n")
        + "networks:\n  private: {internal: true}\n  public: {}\n"
    )
    handles = await start_all(runtime, project)

    async def reach(where: str, host: str, port: int = 8000, attempts: int = 1) -> tuple[bool, str]:
        code = (
            "import socket, sys, time\n"
            f"for attempt in range({attempts}):\n"
            "    try:\n"
            f"        connection = socket.create_connection(({host!r}, {port}), timeout=2)\n"
            f"        print(connection.recv(5).decode() if {port} == 8000 else 'connected'); break\n"
            "    except OSError as exc:\n"
            "        error = exc; time.sleep(0.2)\n"
            "else:\n"
            "    sys.exit(f'unreachable: {error!r}')\n"
        )
        return await run_python(runtime, project, handles[where], code)

    async def address(where: str) -> str:
        return (
            await run_python(
                runtime, project, handles[where], "import socket; print(socket.gethostbyname(socket.gethostname()))"
            )
        )[1]

    assert await reach("neighbour", "inside", attempts=40) == (True, "hello")
    assert await reach("outsider", "outsider", attempts=40) == (True, "hello")
    ok, output = await reach("outsider", await address("inside"))
    assert not ok, f"a container on another network reached the internal one: {output}"
    ok, output = await reach("inside", await address("outsider"))
    assert not ok, f"the internal network forwarded traffic to another network: {output}"
    # beyond this machine: only checked where a normal network has a way out at all
    ok, outside = await run_python(
        runtime, project, handles["outsider"], "import socket; print(socket.gethostbyname('deb.debian.org'))"
    )
    if ok and (await reach("outsider", outside, port=80)) == (True, "connected"):
        print(f"checked the way out to {outside}:80")
        ok, output = await reach("inside", outside, port=80)
        assert not ok, f"the internal network reached {outside}:80: {output}"


async def test_named_volume_survives_cleanup_unless_asked(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    counter = """
    import pathlib, time
    path = pathlib.Path("/data/count")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    print(f"run {count}", flush=True)
    time.sleep(600)
    """
    project = projects(
        "services:" + python_service("app", counter, extra="    volumes: [data:/data]\n") + "volumes:\n  data: {}\n"
    )
    handles = await start_all(runtime, project)
    assert await _eventually_tail(runtime, project, "app", "run 1")
    await runtime.stop(handles["app"], "SIGKILL", 0)
    await runtime.cleanup(project, remove_volumes=False)
    assert client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project.name}"}) == []
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(f"{project.name}_default")
    client.volumes.get(f"{project.name}_data")

    handles = await start_all(runtime, project)
    assert await _eventually_tail(runtime, project, "app", "run 2")
    await runtime.stop(handles["app"], "SIGKILL", 0)
    await runtime.cleanup(project, remove_volumes=True)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(f"{project.name}_data")


async def test_isolation_and_limits_reach_the_container(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    extra = """\
    read_only: true
    cap_drop: [ALL]
    user: "1000:1000"
    security_opt: ["no-new-privileges:true"]
    init: true
    tmpfs: [/scratch]
    shm_size: 32m
    hostname: apphost
    extra_hosts: ["somehost=10.1.2.3"]
    sysctls: {net.core.somaxconn: 1024}
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    labels: {team: core}
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64m, pids: 50}
        reservations: {memory: 32m}
"""
    project = projects("services:" + python_service("app", SLEEPER, extra=extra))
    handles = await start_all(runtime, project)
    info = inspect(client, handles["app"].ident)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert info["Config"]["User"] == "1000:1000"
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Init"] is True
    assert host["Tmpfs"] == {"/scratch": ""}
    assert host["ShmSize"] == 32 * 1024 * 1024
    assert info["Config"]["Hostname"] == "apphost"
    assert host["ExtraHosts"] == ["somehost:10.1.2.3"]
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["MemoryReservation"] == 32 * 1024 * 1024
    assert host["PidsLimit"] == 50
    assert info["Config"]["Labels"]["team"] == "core"

    app = handles["app"]
    assert await run_python(runtime, project, app, "import os; print(os.getuid(), os.getgid())") == (True, "1000 1000")
    ok, output = await run_python(runtime, project, app, "open('/oops', 'w')")
    assert not ok and "Read-only file system" in output
    assert await run_python(runtime, project, app, "open('/scratch/ok', 'w').write('x'); print('ok')") == (True, "ok")
    capabilities = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapBnd')][0])"
    assert await run_python(runtime, project, app, capabilities) == (True, "0000000000000000")


async def test_network_mode_none(projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient) -> None:
    project = projects("services:" + python_service("app", SLEEPER, extra="    network_mode: none\n"))
    handles = await start_all(runtime, project)
    info = inspect(client, handles["app"].ident)
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert list(info["NetworkSettings"]["Networks"]) == ["none"]
    assert client.networks.list(names=[f"{project.name}_default"]) == []


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_a_published_port_in_use_is_refused(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient, busy_port: int
) -> None:
    extra = f'    ports: ["127.0.0.1:{busy_port}:8000"]\n'
    project = projects("services:" + python_service("app", SLEEPER, extra=extra))
    await runtime.prepare(project)
    with pytest.raises(RuntimeFailure, match=rf"{busy_port}.*already in use"):
        await runtime.start(project, project.services["app"])
    assert client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project.name}"}) == []


async def test_published_ports_and_a_second_project_on_the_same_port(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = HELLO_SERVER
    compose = "services:" + python_service("web", server, extra=f'    ports: ["127.0.0.1:{port}:8000"]\n')
    first, second = projects(compose), projects(compose)
    handles = await start_all(runtime, first)
    bindings = inspect(client, handles["web"].ident)["HostConfig"]["PortBindings"]
    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    await runtime.prepare(second)
    with pytest.raises(RuntimeFailure, match=rf"{port}.*already in use"):
        await runtime.start(second, second.services["web"])


async def test_external_network_must_exist(projects: ProjectFactory, runtime: DockerRuntime) -> None:
    project = projects(
        "services:"
        + python_service("app", SLEEPER, extra="    networks: [shared]\n")
        + "networks:\n  shared: {external: true, name: ut-no-such-network}\n"
    )
    with pytest.raises(RuntimeFailure, match=r"ut-no-such-network.*external.*docker network create"):
        await runtime.prepare(project)


async def test_a_container_of_another_instance_is_never_taken_over(
    projects: ProjectFactory, runtime: DockerRuntime, client: docker.DockerClient, image: str
) -> None:
    project = projects("services:" + python_service("app", SLEEPER))
    squatter = client.containers.create(image, ["sleep", "60"], name=f"{project.name}-app-1")
    try:
        await runtime.prepare(project)
        with pytest.raises(RuntimeFailure, match="already exists and belongs to"):
            await runtime.start(project, project.services["app"])
        assert client.containers.get(squatter.id).status == "created"
    finally:
        squatter.remove(force=True)


async def _eventually_tail(runtime: DockerRuntime, project: Project, service: str, line: str) -> bool:
    import asyncio
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if line in await runtime.tail(project, service, 20):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_cleanup_stops_a_running_container_with_its_stop_signal_first(
    projects: ProjectFactory, runtime: DockerRuntime
) -> None:
    """A container that is still running at cleanup (its stop failed, or nothing tracked it) gets its stop_signal
    and its grace period, as `docker compose down` gives it, not the SIGKILL of a forced removal: a database
    removed so would start with a recovery."""
    graceful = """
    import pathlib, signal, sys, time
    def leave(number, frame):
        pathlib.Path("/data/stopped").write_text(signal.Signals(number).name)
        sys.exit(0)
    signal.signal(signal.SIGINT, leave)
    print("up", flush=True)
    time.sleep(600)
    """
    extra = "    stop_signal: SIGINT\n    stop_grace_period: 5s\n    volumes: [data:/data]\n"
    project = projects("services:" + python_service("app", graceful, extra=extra) + "volumes:\n  data: {}\n")
    await start_all(runtime, project)
    assert await _eventually_tail(runtime, project, "app", "up")
    await runtime.cleanup(project, remove_volumes=False)  # never stopped by the engine
    handles = await start_all(runtime, project)
    ok, output = await run_python(runtime, project, handles["app"], 'print(open("/data/stopped").read())')
    assert ok and output.strip() == "SIGINT", output
    await runtime.stop(handles["app"], "SIGKILL", 0)
    await runtime.cleanup(project, remove_volumes=True)
