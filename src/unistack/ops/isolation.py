"""The built-in isolation checks: only published ports are reachable. One check per running service.

- Host processes: every TCP socket the service's processes listen on (psutil, the whole process tree) must be
  one of its published ports; any other listener is reachable from the host, so it fails (once a connection to
  it is seen to succeed). Unix sockets are private by their folder's mode.
- Containers: the ports the container listens on (its ``/proc/net/tcp*``, read from the host or, failing that,
  inside it), on each ``internal: true`` network it is on, must be unreachable from the host and from every
  running container that is not on that network (a connection tried from inside each, by the runtime's exec,
  with ``python3`` or bash's ``/dev/tcp``). A connection counts only when a control port nothing listens on is
  refused at the same address (an intercepting proxy on the way accepts every connection). Ports bound to
  loopback are skipped; Docker's bridge networks that
  are not internal are reachable from the host by design and are not judged. The container's actual port
  bindings must be the ones the file publishes.

Never changes a container or a process; every connection attempt is bounded (``CONNECT_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from unistack.ops.validate import Check, Context, Outcome, failed, passed, skipped
from unistack.runtimes import DOCKER, PROCESS

if TYPE_CHECKING:
    from unistack.engine.states import ServiceRow

CONNECT_TIMEOUT = 0.5
LOOPBACK = ("127.", "::1")
# connects to $1:$2 and to $1:$3 (a port nothing listens on) from inside a container, each bounded by $4 seconds:
# exit 0: the port answered and the control was refused (reached); 3: both answered (something on the way accepts
# every connection, e.g. an intercepting proxy: the container was not shown to be reached); 4: the port answered and
# the control neither answered nor was refused (timed out, cut: not shown either way); 1: not reached; 125: no tool.
# c's own codes: 0 connected, 10 refused, anything else neither (a timeout, a probe that could not start in time).
PROBE = """
c() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c "import errno,socket,sys; s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.settimeout(float(sys.argv[3]))
e=s.connect_ex((sys.argv[1], int(sys.argv[2])))
sys.exit(0 if e == 0 else 10 if e == errno.ECONNREFUSED else 12)" "$1" "$2" "$3"
  elif command -v bash >/dev/null 2>&1; then
    if command -v timeout >/dev/null 2>&1; then out=$(timeout "$3" bash -c "exec 3<>/dev/tcp/$1/$2" 2>&1)
    else out=$(bash -c "exec 3<>/dev/tcp/$1/$2" 2>&1); fi
    r=$?
    [ "$r" = 0 ] && return 0
    case "$out" in *refused*) return 10;; esac
    return 12
  else return 125; fi
}
c "$1" "$2" "$4"; a=$?
[ "$a" = 125 ] && exit 125
[ "$a" != 0 ] && exit 1
c "$1" "$3" "$4"; b=$?
[ "$b" = 0 ] && exit 3
[ "$b" = 10 ] && exit 0
exit 4
"""
INTERCEPTED = 3
UNDECIDED = 4
NO_PROBE = 125
Answer = Literal["connected", "refused", "silent"]


def checks(ctx: Context) -> list[Check]:
    found = []
    for row in ctx.rows:
        if not ctx.wanted(row.service) or not row.live or row.service not in ctx.project.services:
            continue
        if ctx.runtime_name == PROCESS and row.pid:
            found.append(Check(f"{row.service} isolated", row.service, _bind(host_process, ctx, row)))
        elif ctx.runtime_name == DOCKER and row.container:
            found.append(Check(f"{row.service} isolated", row.service, _bind(container, ctx, row)))
    return found


def prepare(ctx: Context) -> None:
    """Before any check's clock starts: the docker runtime and the Docker SDK under it (a few hundred modules,
    seconds to import on a loaded machine: on the event loop otherwise, inside the first container check's time,
    stalling every check beside it)."""
    if ctx.runtime_name == DOCKER and any(row.container for row in ctx.rows):
        from unistack.runtimes.docker import engine, resources  # noqa: F401

        if ctx.runtime is not None:
            ctx.runtime()  # no I/O: the engine client is made on first use, in a thread


def _bind(
    fn: Callable[[Context, ServiceRow], Awaitable[Outcome]], ctx: Context, row: ServiceRow
) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        return await fn(ctx, row)

    return run


def reachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when a TCP connection to host:port succeeds from here."""
    return answer(host, port, timeout) == "connected"


def answer(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> Answer:
    """How a TCP connection to host:port from here goes: connected; refused (whatever is at that address said
    nothing listens there); silent (timed out, no route, any other error: nothing shown either way)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            return "silent"
    return "connected"


# ----------------------------------------------------------------------------- host processes


async def host_process(ctx: Context, row: ServiceRow) -> Outcome:
    assert row.pid is not None
    published = {port.host_port for port in row.ports if port.protocol == "tcp"}
    listeners = await asyncio.to_thread(_listeners_of_tree, row.pid)
    if listeners is None:
        return skipped(f"cannot read the sockets of pid {row.pid}")
    extra = sorted((ip, port) for ip, port in listeners if port not in published)
    leaks = []
    for ip, port in extra:
        target = "127.0.0.1" if ip in ("0.0.0.0", "") else "::1" if ip == "::" else ip
        if await asyncio.to_thread(reachable, target, port):
            leaks.append(f"{ip or '*'}:{port}")
    if leaks:
        return failed(
            f"listens on TCP {', '.join(leaks)}, which is not published: anything on this host can connect",
            f"make {row.service} listen on a unix socket (or publish the port in `ports:`)",
        )
    shown = ", ".join(f"{ip}:{port}" for ip, port in sorted(listeners)) or "no TCP port (unix sockets only)"
    return passed(f"listens on {shown}")


def _listeners_of_tree(pid: int) -> set[tuple[str, int]] | None:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    found.add((conn.laddr.ip, conn.laddr.port))
    return found


# ----------------------------------------------------------------------------- containers


Inspect = Callable[[str], dict[str, Any] | None]
Connect = Callable[[str, int], Answer]


async def container(
    ctx: Context, row: ServiceRow, inspect: Inspect | None = None, connect: Connect | None = None
) -> Outcome:
    """``inspect`` (the container's engine record) and ``connect`` (a TCP connection from this host) are seams."""
    from unistack.runtimes.docker import resources

    assert row.container is not None
    info = await asyncio.to_thread(inspect or _inspect, row.container)
    if info is None:
        return skipped(f"cannot inspect container {row.container[:12]}")
    problems = _extra_bindings(ctx, row, info)
    networks = info.get("NetworkSettings", {}).get("Networks") or {}
    internal = {
        resources.network_name(ctx.project, key)
        for key, definition in ctx.project.networks.items()
        if (definition or {}).get("internal")
    }
    mine = {name: (net.get("IPAddress") or net.get("GlobalIPv6Address")) for name, net in networks.items()}
    targets = [(name, ip) for name, ip in mine.items() if name in internal and ip]
    if not targets:
        return failed("; ".join(problems)) if problems else passed("on no internal network; bindings as published")
    listeners = await _listening_ports(ctx, row, int(info.get("State", {}).get("Pid") or 0))
    published = {port.target for port in row.ports}
    ports = sorted(p for p in listeners if p not in published)
    if not ports:
        return failed("; ".join(problems)) if problems else passed("listens on no TCP port of its internal networks")
    control = next(p for p in (1, 9, 65534, 65533) if p not in listeners)  # a port nothing listens on
    attempts: list[Awaitable[str | None]] = []
    for network, ip in targets:
        for port in ports:
            attempts.append(_from_host(ip, port, control, network, connect or answer))
            for other in ctx.rows:
                other_networks = _networks_of(ctx, other)
                if other.container and other.live and other.service != row.service and network not in other_networks:
                    attempts.append(_from_container(ctx, other, ip, port, control, network))
    found = [p for p in await asyncio.gather(*attempts) if p]
    skipped_vantages = list(dict.fromkeys(p for p in found if p.startswith("(")))
    problems += [p for p in found if not p.startswith("(")]
    if problems:
        return failed(
            "; ".join(problems),
            f"keep {row.service} on internal networks only, and publish nothing it does not need to",
        )
    where = ", ".join(f"{ip}:{port} ({network})" for network, ip in targets for port in ports)
    note = f"; {'; '.join(skipped_vantages)}" if skipped_vantages else ""
    return passed(f"{where}: unreachable from the host and from services off those networks{note}")


def _inspect(container_id: str) -> dict[str, Any] | None:
    from unistack.runtimes.docker import engine

    try:
        client = engine.client(timeout=10)
    except Exception:
        return None
    try:
        info: dict[str, Any] = client.api.inspect_container(container_id)
        return info
    except Exception:
        return None
    finally:
        client.close()


def _networks_of(ctx: Context, row: ServiceRow) -> set[str]:
    from unistack.runtimes.docker import resources

    service = ctx.project.services.get(row.service)
    if service is None:
        return set()
    return {resources.network_name(ctx.project, key) for key in resources.service_networks(service)}


def _extra_bindings(ctx: Context, row: ServiceRow, info: dict[str, Any]) -> list[str]:
    declared = {port.host_port for port in row.ports}
    bindings = (info.get("HostConfig") or {}).get("PortBindings") or {}
    extra = [
        f"{spec}->{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
        for spec, items in bindings.items()
        for b in items or []
        if b.get("HostPort") and int(b["HostPort"]) not in declared
    ]
    return [f"publishes {', '.join(extra)}, which the file does not"] if extra else []


async def _listening_ports(ctx: Context, row: ServiceRow, pid: int) -> set[int]:
    texts = []
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            texts.append(await asyncio.to_thread(Path(f"/proc/{pid}/net/{name}").read_text))
    if not texts and ctx.runtime is not None:  # not ours to read from the host: read it inside
        result = await _exec(ctx, row, ["sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"])
        texts = [result[1]] if result is not None else []
    return {port for text in texts for port in listening(text)}


def listening(proc_net_tcp: str) -> set[int]:
    """The TCP ports in LISTEN state (``0A``) in a /proc/net/tcp(6) table, but those bound to loopback."""
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A" or fields[0] == "sl":
            continue
        address, _, port = fields[1].partition(":")
        with contextlib.suppress(ValueError):
            if not _loopback(address):
                ports.add(int(port, 16))
    return ports


def _loopback(hex_address: str) -> bool:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1]).is_loopback
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    ip = ipaddress.IPv6Address(words)
    return ip.is_loopback or (ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


async def _from_host(ip: str, port: int, control: int, network: str, connect: Connect) -> str | None:
    """A connection counts only when the control port on the same address is refused: otherwise whatever accepts
    it is on the way (an intercepting proxy accepts connections to any address), not the container; a control that
    times out shows nothing either way (a slow proxy on the way, a loaded machine)."""
    if await asyncio.to_thread(connect, ip, port) != "connected":
        return None
    control_answer = await asyncio.to_thread(connect, ip, control)
    if control_answer == "connected":
        return f"(from the host, every port of {ip} answers: intercepted on the way)"
    if control_answer == "silent":
        return f"(from the host, {ip}:{port} answered but port {control} neither answered nor refused: not judged)"
    return f"reachable from the host at {ip}:{port} ({network} is internal)"


async def _from_container(
    ctx: Context, vantage: ServiceRow, ip: str, port: int, control: int, network: str
) -> str | None:
    argv = ["sh", "-c", PROBE, "probe", ip, str(port), str(control), str(CONNECT_TIMEOUT)]
    result = await _exec(ctx, vantage, argv)
    if result is None:
        return f"(not tried from {vantage.service})"
    code, _ = result
    if code == 0:
        return f"reachable from {vantage.service} (not on {network}) at {ip}:{port}"
    if code == INTERCEPTED:
        return f"(from {vantage.service}, every port of {ip} answers: intercepted on the way)"
    if code == UNDECIDED:
        return (
            f"(from {vantage.service}, {ip}:{port} answered but port {control} neither answered nor refused: "
            "not judged)"
        )
    if code == NO_PROBE:
        return f"(not tried from {vantage.service}: no python3 or bash in it)"
    return None


async def _exec(ctx: Context, row: ServiceRow, argv: list[str]) -> tuple[int | None, str] | None:
    from unistack.config.model import Healthcheck
    from unistack.runtimes.base import Handle

    service = ctx.project.services.get(row.service)
    if ctx.runtime is None or service is None or row.container is None:
        return None
    check = Healthcheck(kind="CMD", test=tuple(argv), timeout=CONNECT_TIMEOUT * 4)
    result = await ctx.runtime().probe(ctx.project, service, Handle(row.service, row.container, 0.0), check)
    if result.exit_code is None and "timed out" not in result.output:
        return None
    return result.exit_code, result.output
