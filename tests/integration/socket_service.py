"""A small server on a unix socket for the start-first update tests, as uvicorn behaves with ``--uds``.

Environment: SOCKET (the path it binds, after removing a stale file), VERSION (what it answers), READY_AFTER
seconds before /health answers 200, NEVER_READY=1 for a /health that always fails. Any other path answers
``VERSION`` after a short pause (a request in flight). On SIGTERM it stops accepting, finishes the requests in
flight, removes its socket path (uvicorn does) and exits 0. ``check`` as the first argument: the healthcheck
(GET /health on SOCKET, exit 0 when 200).
"""

import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

path = os.environ.get("SOCKET", "")
version = os.environ.get("VERSION", "v0")
ready_after = float(os.environ.get("READY_AFTER", "0"))
started = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        if self.path == "/health":
            ok = os.environ.get("NEVER_READY") != "1" and time.monotonic() - started >= ready_after
            body, status = (b"ok\n", 200) if ok else (b"not ready\n", 500)
        else:
            time.sleep(0.02)
            body, status = f"{version}\n".encode(), 200
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"


class Server(ThreadingHTTPServer):
    address_family = socket.AF_UNIX
    daemon_threads = False  # server_close waits for the requests in flight
    block_on_close = True

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)


def check() -> int:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):  # to the end: a reader that hangs up early breaks the server's write
                answer += chunk
        except OSError as exc:
            print(f"cannot reach {path}: {exc}")
            return 1
    print(answer.split(b"\r\n")[0].decode())
    return 0 if b" 200 " in answer else 1


def main() -> None:
    Path(path).unlink(missing_ok=True)
    server = Server(path, Handler)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{version} listening on {path} pid={os.getpid()}", flush=True)
    stopping.wait()
    print(f"{version} got SIGTERM: draining", flush=True)
    server.shutdown()
    server.server_close()
    if Path(path).exists():
        Path(path).unlink()  # as uvicorn does: the path, whatever it names now
    time.sleep(float(os.environ.get("DRAIN", "0")))  # a long drain: it still runs meanwhile
    print(f"{version} stopped", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        sys.exit(check())
    main()
