#!/usr/bin/env python3
"""A healthcheck that GETs a URL with the standard library and prints one line.

    http_check.py URL [--unix SOCKET] [--expect 200] [--timeout 3]

With --unix, the request goes over that unix socket and URL's host part only fills the Host header
(``http_check.py http://localhost/api/ready --unix "$UNISTACK_RUN_DIR/backend.sock"``).
Exit 0 when the status is the expected one (any 2xx by default), else 1.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import time
import urllib.parse


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, host: str, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http_check.py")
    parser.add_argument("url")
    parser.add_argument("--unix", help="send the request over this unix socket")
    parser.add_argument("--expect", type=int, help="the status that counts as healthy (default: any 2xx)")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    began = time.monotonic()
    conn: http.client.HTTPConnection
    if args.unix:
        conn = UnixConnection(args.unix, url.netloc or "localhost", args.timeout)
    else:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=args.timeout)
    try:
        conn.request("GET", target, headers={"User-Agent": "unistack-healthcheck"})
        response = conn.getresponse()
        body = response.read(200).decode("utf-8", "replace").replace("\n", " ").strip()
    except OSError as exc:
        print(f"GET {args.url}{' via ' + args.unix if args.unix else ''} failed: {exc}")
        return 1
    finally:
        conn.close()
    ok = response.status == args.expect if args.expect else 200 <= response.status < 300
    took = (time.monotonic() - began) * 1000
    print(f"GET {target} -> {response.status} in {took:.0f}ms: {body[:120]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
