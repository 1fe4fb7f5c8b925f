"""A healthcheck command for supervisors without curl: HTTP GET over the backend's unix socket.

    python -m app.healthcheck /path/to/backend.sock /api/ready

Prints the status and the first 200 characters of the body; exits 0 on 200, else 1 (also for bad usage and
for a socket that does not answer within the timeout). Standard library only, so it starts fast.
"""

import http.client
import socket
import sys

TIMEOUT_SECONDS = 2.0
USAGE = "usage: python -m app.healthcheck SOCKET_PATH [URL_PATH]   (URL_PATH defaults to /api/ready)"


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


def probe(socket_path: str, url_path: str, timeout: float = TIMEOUT_SECONDS) -> tuple[int, str]:
    """GETs the path; returns the status and the body's first 200 characters. Raises OSError if unreachable."""
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request("GET", url_path, headers={"Host": "localhost", "User-Agent": "stack-backend-healthcheck"})
        response = connection.getresponse()
        body = response.read(800).decode("utf-8", errors="replace")
        return response.status, body[:200]
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 1
    socket_path = argv[0]
    url_path = argv[1] if len(argv) == 2 else "/api/ready"
    try:
        status, body = probe(socket_path, url_path)
    except (OSError, http.client.HTTPException) as exc:
        print(f"unreachable: {socket_path}: {exc or type(exc).__name__}")
        return 1
    print(f"{status} {body}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
