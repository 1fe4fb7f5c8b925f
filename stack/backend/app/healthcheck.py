"""A healthcheck command for supervisors without curl: HTTP GET to the backend, over its unix socket or TCP.

    python -m app.healthcheck [URL_PATH]            the backend named by the environment (below)
    python -m app.healthcheck TARGET URL_PATH       an explicit target: a socket path, or HOST:PORT

The target from the environment is what the server listens on, so one command line serves both forms of the
stack (compose.yaml's healthcheck is shared by host processes and containers): BACKEND_SOCKET (a unix socket
path, host processes) when set, else 127.0.0.1:BACKEND_PORT (default 8000, containers). URL_PATH defaults to
/api/ready.

Prints the status and the first 200 characters of the body; exits 0 on 200, else 1 (also for bad usage and
for a target that does not answer within the timeout). Standard library only, so it starts fast.
"""

import http.client
import os
import socket
import sys
from collections.abc import Mapping

TIMEOUT_SECONDS = 2.0
DEFAULT_PORT = 8000
DEFAULT_PATH = "/api/ready"
USAGE = (
    "usage: python -m app.healthcheck [URL_PATH]   (the target: $BACKEND_SOCKET, else 127.0.0.1:$BACKEND_PORT)\n"
    "       python -m app.healthcheck SOCKET_PATH|HOST:PORT URL_PATH\n"
    f"URL_PATH defaults to {DEFAULT_PATH}"
)


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a unix socket instead of a host and port."""

    def __init__(self, socket_path: str, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection_for(target: str, timeout: float = TIMEOUT_SECONDS) -> http.client.HTTPConnection:
    """A socket path (anything with a '/') is a unix socket; otherwise HOST:PORT, or a bare port on 127.0.0.1."""
    if "/" in target:
        return UnixHTTPConnection(target, timeout)
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{target!r} is neither a socket path nor HOST:PORT")
    return http.client.HTTPConnection(host.strip("[]") or "127.0.0.1", int(port), timeout=timeout)


def target_from(env: Mapping[str, str]) -> str:
    """BACKEND_SOCKET when set (host processes), else 127.0.0.1:BACKEND_PORT (containers; default 8000)."""
    if env.get("BACKEND_SOCKET"):
        return env["BACKEND_SOCKET"]
    return f"127.0.0.1:{env.get('BACKEND_PORT') or DEFAULT_PORT}"


def probe(target: str, url_path: str, timeout: float = TIMEOUT_SECONDS) -> tuple[int, str]:
    """GETs the path; returns the status and the body's first 200 characters. Raises OSError if unreachable."""
    connection = connection_for(target, timeout)
    try:
        connection.request("GET", url_path, headers={"Host": "localhost", "User-Agent": "stack-backend-healthcheck"})
        response = connection.getresponse()
        body = response.read(800).decode("utf-8", errors="replace")
        return response.status, body[:200]
    finally:
        connection.close()


def main(argv: list[str], env: Mapping[str, str] = os.environ) -> int:
    if len(argv) > 2 or (argv and argv[0] in ("-h", "--help")):
        print(USAGE, file=sys.stderr)
        return 1
    if len(argv) == 2:
        target, url_path = argv
    else:
        target, url_path = target_from(env), argv[0] if argv else DEFAULT_PATH
    if not url_path.startswith("/"):
        print(f"URL_PATH must start with '/', not {url_path!r}\n{USAGE}", file=sys.stderr)
        return 1
    try:
        status, body = probe(target, url_path)
    except ValueError as exc:
        print(f"{exc}\n{USAGE}", file=sys.stderr)
        return 1
    except (OSError, http.client.HTTPException) as exc:
        print(f"unreachable: {target}: {exc or type(exc).__name__}")
        return 1
    print(f"{status} {body}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
