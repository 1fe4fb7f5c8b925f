"""A multi-node Docker Swarm on this one machine, for tests: each node is a dockerd of its own (data root, exec root,
pidfile, unix socket) inside a network namespace the harness creates, its ``eth0`` a veth whose other end is on a
bridge in another namespace of the harness's own; addresses exist only inside those namespaces. A registry
(Debian's ``docker-registry``) runs in the manager's namespace, and every node trusts it over plain HTTP.

Each dockerd is started with ``nsenter --net=/run/netns/NAME`` (``ip netns exec`` remounts /sys and hides the
cgroup v1 mounts: "Devices cgroup isn't mounted"). Teardown removes everything even after a failure or a killed
dockerd: the daemons and their containerd shims (found by their sockets under the exec roots), the mounts under
the data and exec roots, the folders, the namespaces. Every wait is bounded.

Run by hand: ``python -m tests.swarm.harness`` forms a swarm, prints it and tears it down.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import psutil

SUBNET = "192.168.213"  # the underlay; never routed anywhere, it exists only inside the namespaces
REGISTRY_PORT = 5000


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass
class Node:
    name: str
    netns: str
    address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    _client: docker.DockerClient | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        # short: containerd's socket path below it must fit a unix socket address (108 bytes)
        return Path(f"/run/us-{self.netns}")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        """One client per node, kept (closed when the node stops)."""
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, timeout=300)
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def answers(self) -> bool:
        """The engine's /_ping over its socket (a plain request: the SDK leaks the socket of a failed first call)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            try:
                probe.connect(str(self.socket))
                probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return probe.recv(4096).endswith(b"OK")
            except OSError:
                return False


@dataclass
class Swarm:
    prefix: str
    root: Path
    nodes: list[Node] = field(default_factory=list)
    registry_process: subprocess.Popen[bytes] | None = None

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def registry(self) -> str:
        return f"{self.manager.address}:{REGISTRY_PORT}"

    @property
    def bridge_netns(self) -> str:
        return f"{self.prefix}br"


def _wait(what: str, ok: Any, deadline: float, every: float = 0.1) -> Any:
    end = time.monotonic() + deadline
    while True:
        with contextlib.suppress(Exception):
            if value := ok():
                return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {deadline:.0f} s")
        time.sleep(every)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sweep_stale() -> list[str]:
    """What an earlier run killed before its teardown left (its namespaces ``us<pid>...``, their dockerd and shims,
    mounts and exec roots), removed when that pid is gone; returns the namespaces removed."""
    removed = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False).stdout
    for name in sorted({line.split()[0] for line in listing.splitlines() if line.strip()}):
        match = re.fullmatch(r"us(\d+)(n\d+|br)", name)
        if match is None or _alive(int(match.group(1))):
            continue
        if match.group(2) != "br":
            node = Node(name, name, "", Path("/nonexistent"))
            _kill_leftovers(node)
            _unmount_below(node.exec_root)
            shutil.rmtree(node.exec_root, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)
        removed.append(name)
    for root in Path(tempfile.gettempdir()).glob("unistack-swarm-us*-*"):
        match = re.fullmatch(r"unistack-swarm-us(\d+)-.*", root.name)
        if match is not None and not _alive(int(match.group(1))):
            for process in psutil.process_iter(["cmdline"]):  # its registry
                with contextlib.suppress(psutil.Error):
                    if any(str(root) in part for part in process.info["cmdline"] or ()):
                        process.kill()
            _unmount_below(root)
            shutil.rmtree(root, ignore_errors=True)
    return removed


def start(count: int = 3, prefix: str | None = None, root: Path | None = None) -> Swarm:
    """Namespaces, bridge, dockerds, registry, one swarm; torn down again when any step fails. What a killed
    earlier run left is swept first."""
    sweep_stale()
    prefix = prefix or f"us{os.getpid() % 100000}"
    swarm = Swarm(prefix, root or Path(tempfile.mkdtemp(prefix=f"unistack-swarm-{prefix}-")))
    try:
        _network(swarm, count)
        for node in swarm.nodes:
            _start_dockerd(node)
        for node in swarm.nodes:
            _wait(f"dockerd of {node.name}", node.answers, 60)
        _registry(swarm)
        _form(swarm)
    except BaseException:
        stop(swarm)
        raise
    return swarm


def _network(swarm: Swarm, count: int) -> None:
    bridge = swarm.bridge_netns
    run("ip", "netns", "add", bridge)
    run("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
    run("ip", "-n", bridge, "link", "set", "br0", "up")
    for index in range(1, count + 1):
        netns = f"{swarm.prefix}n{index}"
        node = Node(f"node{index}", netns, f"{SUBNET}.{10 + index}", swarm.root / f"node{index}")
        swarm.nodes.append(node)
        run("ip", "netns", "add", netns)
        veth = f"{swarm.prefix}v{index}"
        run("ip", "link", "add", veth, "netns", bridge, "type", "veth", "peer", "name", "eth0", "netns", netns)
        run("ip", "-n", bridge, "link", "set", veth, "master", "br0", "up")
        run("ip", "-n", netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")


def _start_dockerd(node: Node) -> None:
    node.root.mkdir(parents=True, exist_ok=True)
    log = (node.root / "dockerd.log").open("ab")
    argv = [
        "nsenter",
        f"--net=/run/netns/{node.netns}",
        "dockerd",
        f"--data-root={node.data_root}",
        f"--exec-root={node.exec_root}",
        f"--pidfile={node.root / 'dockerd.pid'}",
        f"--host={node.url}",
        f"--insecure-registry={SUBNET}.0/24",
        "--storage-driver=overlay2",
        "--log-level=warn",
    ]
    node.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()


def _registry(swarm: Swarm) -> None:
    storage = swarm.root / "registry"
    storage.mkdir()
    config = swarm.root / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{swarm.registry}'}}\n"
    )
    log = (swarm.root / "registry.log").open("ab")
    swarm.registry_process = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", "docker-registry", "serve", str(config)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    _wait("the registry", lambda: _registry_answers(swarm), 30)


def _registry_answers(swarm: Swarm) -> bool:
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", "python3", "-c",
         f"import urllib.request; urllib.request.urlopen('http://{swarm.registry}/v2/', timeout=2)"],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    return done.returncode == 0


def _form(swarm: Swarm) -> None:
    manager = swarm.manager.client()
    manager.swarm.init(advertise_addr=swarm.manager.address, listen_addr=f"{swarm.manager.address}:2377")
    token = manager.swarm.attrs["JoinTokens"]["Worker"]
    for node in swarm.nodes[1:]:
        node.client().swarm.join(
            remote_addrs=[f"{swarm.manager.address}:2377"], join_token=token, advertise_addr=node.address
        )
    _wait(
        "every node ready",
        lambda: len([n for n in manager.nodes.list() if n.attrs["Status"]["State"] == "ready"]) == len(swarm.nodes),
        30,
    )


def stop_node(node: Node, sig: int = signal.SIGKILL) -> None:
    """Stop one node's dockerd (killed: as a machine that fails), its containers' shims with it."""
    node.close_client()
    if node.process is not None and node.process.poll() is None:
        _signal_tree(node.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(20)
    _kill_leftovers(node)


def restart_node(node: Node) -> None:
    _start_dockerd(node)
    _wait(f"dockerd of {node.name}", node.answers, 60)


def _signal_tree(pid: int, sig: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        for process in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)


def _kill_leftovers(node: Node) -> None:
    """containerd and its shims outlive a killed dockerd; they name the node's exec root on their command line."""
    marker = str(node.exec_root)
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in process.info["cmdline"] or ()):
                process.kill()


def _unmount_below(*roots: Path) -> None:
    prefixes = tuple(str(r) for r in roots)
    for _ in range(3):
        mounts = [
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if len(line.split()) > 4
        ]
        below = sorted((m for m in mounts if m.startswith(prefixes)), key=len, reverse=True)
        if not below:
            return
        for mount in below:
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10, check=False)


def stop(swarm: Swarm) -> None:
    """Remove everything ``start`` made, whatever state it is in."""
    for node in swarm.nodes:
        if node.process is not None and node.process.poll() is None:
            _signal_tree(node.process.pid, signal.SIGTERM)
    for node in swarm.nodes:
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(15)
        stop_node(node)
    if swarm.registry_process is not None and swarm.registry_process.poll() is None:
        swarm.registry_process.kill()
        swarm.registry_process.wait(10)
    for node in swarm.nodes:
        _unmount_below(node.root, node.exec_root)
        shutil.rmtree(node.exec_root, ignore_errors=True)
    _unmount_below(swarm.root)
    shutil.rmtree(swarm.root, ignore_errors=True)
    for netns in [*(n.netns for n in swarm.nodes), swarm.bridge_netns]:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=10, check=False)


@contextlib.contextmanager
def running(count: int = 3) -> Iterator[Swarm]:
    swarm = start(count)
    try:
        yield swarm
    finally:
        stop(swarm)


def push_image(swarm: Swarm, image: str) -> None:
    """An image of this machine's engine into the manager's engine (``docker save | docker load``), the way a
    build there would leave it."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    try:
        subprocess.run(
            ["docker", "-H", swarm.manager.url, "load", "-q"],
            stdin=save.stdout,
            capture_output=True,
            timeout=300,
            check=True,
        )
    finally:
        if save.stdout is not None:
            save.stdout.close()
        save.wait(60)


if __name__ == "__main__":
    started = time.monotonic()
    with running() as formed:
        print(f"formed in {time.monotonic() - started:.1f} s:")
        for listed in formed.manager.client().nodes.list():
            print(" ", listed.attrs["Description"]["Hostname"], listed.attrs["Status"], listed.attrs["Spec"]["Role"])
