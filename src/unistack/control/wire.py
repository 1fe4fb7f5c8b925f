"""The control socket's wire and the daemon lock's test, in the standard library only (no pathlib, no msgspec), so
that the read-only verbs' fast path (``fastpath.py``) and the client (``client.py``, ``state.py``) share one copy.

A request is one JSON line; its answer is one JSON line. Never decides what a request means or what an error says:
the callers do.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def exchange(path: str, request: dict[str, Any], timeout: float | None) -> bytes:
    """Send ``request`` to the socket at ``path`` and return the answer's line (empty when the daemon closed the
    connection first). ``timeout`` bounds each wait (``TimeoutError``); other failures raise ``OSError``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall((json.dumps(request, default=str) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def lock_held(path: str) -> bool:
    """True when some process holds the ``flock`` on the file at ``path`` (False when there is no such file)."""
    if not os.path.exists(path):
        return False
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
