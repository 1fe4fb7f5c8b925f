"""What both runtimes ask of the host, in one neutral place neither runtime owns: signal names as numbers, and
whether a published host port is free. Imported by ``process`` and ``docker.containers``/``docker.stopping``;
imports neither.
"""

from __future__ import annotations

import signal
import socket

from unistack.config.model import Port
from unistack.errors import PermanentFailure, RuntimeFailure


def signal_number(name: str) -> int:
    """``SIGTERM``, ``TERM`` or ``15`` as a signal number."""
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise RuntimeFailure(f"unknown stop_signal {name!r}; use a name such as SIGTERM or SIGINT") from None


def check_port_free(service: str, port: Port) -> None:
    """Refuse to start a service whose published host port is taken, as Docker would (a PermanentFailure: the
    engine does not retry what only freeing the port can heal)."""
    if port.published is None:
        return
    host = port.host_ip or "0.0.0.0"
    problem = bind_problem(host, port.published, port.protocol)
    if problem is not None:
        raise PermanentFailure(
            f"host port {host}:{port.published}/{port.protocol} of {service} is already in use "
            f"({problem.strerror}); stop what listens there or publish another port"
        ) from problem


def bind_problem(host: str, number: int, protocol: str = "tcp") -> OSError | None:
    """Why ``host:number`` cannot be bound now (None: it is free).

    Binding without SO_REUSEPORT fails while anyone listens there, even a server that itself allows port
    sharing (Caddy does), which would otherwise split connections between two instances without an error.
    """
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no conflict
        try:
            probe.bind((host.strip("[]"), number))
        except OSError as exc:
            return exc
    return None
