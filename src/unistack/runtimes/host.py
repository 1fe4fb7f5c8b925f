"""What both runtimes ask of the host, in one neutral place neither runtime owns: signal names as numbers, and
whether a published host port is free. Imported by ``process`` and ``docker.runtime``; imports neither.
"""

from __future__ import annotations

import signal
import socket

from unistack.config.model import Port
from unistack.errors import RuntimeFailure


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
    """Refuse to start a service whose published host port is taken, as Docker would.

    Binding without SO_REUSEPORT fails while anyone listens there, even a server that itself allows port
    sharing (Caddy does), which would otherwise split connections between two instances without an error.
    """
    if port.published is None:
        return
    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    host = port.host_ip or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no conflict
        try:
            probe.bind((host, port.published))
        except OSError as exc:
            raise RuntimeFailure(
                f"host port {host}:{port.published}/{port.protocol} of {service} is already in use "
                f"({exc.strerror}); stop what listens there or publish another port"
            ) from exc
