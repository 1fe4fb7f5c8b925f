"""A small service for integration tests: an HTTP server with scripted readiness, sickness and shutdown.

Environment: PORT (0 = no server), READY_AFTER seconds before it writes the ``<name>.ready`` marker and
/health answers 200, SICK_FILE (a path whose existence makes /health answer 500), IGNORE_TERM=1 to
ignore SIGTERM, EXIT_AFTER + EXIT_CODE to exit on its own. Prints what it does, line by line.
"""

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

name = os.environ.get("UNISTACK_SERVICE", "svc")
ready_after = float(os.environ.get("READY_AFTER", "0"))
sick = Path(os.environ["SICK_FILE"]) if os.environ.get("SICK_FILE") else None
marker = Path(os.environ.get("MARKER_DIR", ".")) / f"{name}.ready"
started = time.monotonic()


def healthy() -> bool:
    return time.monotonic() - started >= ready_after and not (sick and sick.exists())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = healthy()
        body = f"{name} {'ok' if ok else 'not ready'}\n".encode()
        self.send_response(200 if ok else 500)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, lambda *_: print(f"{name} ignores SIGTERM", flush=True))
    else:
        signal.signal(signal.SIGTERM, lambda *_: (print(f"{name} got SIGTERM", flush=True), sys.exit(0)))
    print(f"{name} starting pid={os.getpid()}", flush=True)
    marker.unlink(missing_ok=True)
    if sick and os.environ.get("HEAL_ON_START") == "1":
        sick.unlink(missing_ok=True)
    port = int(os.environ.get("PORT", "0"))
    if port:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if ready_after:
        time.sleep(ready_after)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    print(f"{name} ready", flush=True)
    exit_after = os.environ.get("EXIT_AFTER")
    if exit_after is not None:
        time.sleep(float(exit_after))
        print(f"{name} exits with {os.environ.get('EXIT_CODE', '0')}", flush=True)
        sys.exit(int(os.environ.get("EXIT_CODE", "0")))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
