"""The load generator of bench/load.py: asyncio clients that each record what happened to them, never a verdict.

- ``flood``: N keep-alive connections opened at once, each sending GETs one after another (h11 over raw asyncio
  streams, so a thousand connections cost the generator little);
- ``api_clients``: N concurrent httpx clients of the API (GET /api/notes, one POST in ten), every request bounded by
  the client's timeout, each answer's status, latency and ``Retry-After`` kept;
- ``probe``: one ordinary client asking a path every ``interval`` (what other users see during an attack);
- ``slow_headers`` (slowloris) and ``slow_bodies``: connections that send their headers, or a body, a byte at a
  time, recording whether and when the server cut them.

Every loop ends at a deadline (``until``, a ``time.monotonic()`` value) and every socket operation has a timeout.
Traffic goes only where it is pointed: the stack's proxy on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx

CLIENT_TIMEOUT = 10.0  # every request of every client ends by then, answered or not


@dataclass
class Outcomes:
    """What a group of clients saw: status counts, latencies (s) of answered requests, errors by kind."""

    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    busy_without_retry_after: int = 0

    def answered(self, status: int, latency: float) -> None:
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        self.latencies.append(latency)

    def failed(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

        ok = sum(n for s, n in self.statuses.items() if s.startswith(("2", "3")))
        return {
            "requests": len(lat) + sum(self.errors.values()),
            "succeeded": ok,
            "statuses": dict(sorted(self.statuses.items())),
            "failed": sum(self.errors.values()),
            "errors": self.errors,
            "latency_ms": {
                "p50": pct(0.50),
                "p99": pct(0.99),
                "max": round(lat[-1] * 1000, 1) if lat else None,
                "mean": round(statistics.fmean(lat) * 1000, 1) if lat else None,
            },
            **({"busy_without_retry_after": self.busy_without_retry_after} if "503" in self.statuses else {}),
        }


# --- many connections ---------------------------------------------------------------------------------------------


async def _one_connection(host: str, port: int, paths: list[str], until: float, out: Outcomes) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CLIENT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        out.failed(exc)
        return False
    conn = h11.Connection(h11.CLIENT)
    i = 0
    try:
        while time.monotonic() < until:
            path = paths[i % len(paths)]
            i += 1
            began = time.monotonic()
            request = h11.Request(method="GET", target=path, headers=[("Host", f"{host}:{port}")])
            writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
            status = await asyncio.wait_for(_read_response(reader, conn), CLIENT_TIMEOUT)
            out.answered(status, time.monotonic() - began)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                break  # the server closes this connection (Connection: close)
            conn.start_next_cycle()
    except (OSError, TimeoutError, h11.ProtocolError) as exc:
        out.failed(exc)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)
    return True


async def _read_response(reader: asyncio.StreamReader, conn: h11.Connection) -> int:
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and conn.their_state is not h11.DONE:
                raise ConnectionResetError("the server closed the connection mid-response")
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            return status


async def flood(host: str, port: int, connections: int, paths: list[str], until: float) -> dict[str, Any]:
    """``connections`` keep-alive connections at once (opened together, not one by one), each GETting ``paths``."""
    out = Outcomes()
    opened = await asyncio.gather(*(_one_connection(host, port, paths, until, out) for _ in range(connections)))
    return {"connections": connections, "connected": sum(opened), **out.summary()}


# --- the API's clients --------------------------------------------------------------------------------------------


async def api_clients(base_url: str, clients: int, until: float, write_every: int = 10) -> dict[str, Any]:
    out = Outcomes()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT, limits=limits, trust_env=False) as c:

        async def client(n: int) -> None:
            i = 0
            while time.monotonic() < until:
                i += 1
                began = time.monotonic()
                try:
                    if write_every and (i + n) % write_every == 0:
                        response = await c.post("/api/notes", json={"title": f"load {n}-{i}", "body": "bench"})
                    else:
                        response = await c.get("/api/notes", params={"limit": 20})
                except httpx.HTTPError as exc:
                    out.failed(exc)
                    continue
                out.answered(response.status_code, time.monotonic() - began)
                if response.status_code == 503:
                    if not response.headers.get("retry-after", "").isdigit():
                        out.busy_without_retry_after += 1
                    await asyncio.sleep(0.05)  # as a polite client would (Retry-After says 1 s; this is load)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return {"clients": clients, **out.summary()}


async def probe(base_url: str, path: str, until: float, interval: float = 0.1) -> dict[str, Any]:
    """One ordinary user: a GET every ``interval`` seconds, one at a time, on a connection of its own."""
    out = Outcomes()
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT, trust_env=False) as c:
        while time.monotonic() < until:
            began = time.monotonic()
            try:
                response = await c.get(path)
                out.answered(response.status_code, time.monotonic() - began)
            except httpx.HTTPError as exc:
                out.failed(exc)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))
    return {"path": path, **out.summary()}


# --- slow clients -------------------------------------------------------------------------------------------------


async def _dribble(host: str, port: int, head: bytes, drip: bytes, every: float, until: float) -> float | None:
    """Sends ``head`` at once, then ``drip`` a byte every ``every`` s; the seconds until the server cut it, or None
    when it was still open at ``until``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CLIENT_TIMEOUT)
    except (OSError, TimeoutError):
        return -1.0  # never connected (counted apart)
    began = time.monotonic()
    try:
        writer.write(head)
        await writer.drain()
        for i in range(len(drip)):
            if time.monotonic() >= until:
                return None
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(4096), every) == b"":
                    return time.monotonic() - began  # EOF: cut (perhaps after an answer such as 408)
            writer.write(drip[i : i + 1])
            await writer.drain()
        return None
    except OSError:
        return time.monotonic() - began
    finally:
        writer.close()


def _cut_summary(kind: str, results: list[float | None]) -> dict[str, Any]:
    cut = sorted(r for r in results if r is not None and r >= 0)
    return {
        "connections": len(results),
        "never_connected": sum(1 for r in results if r is not None and r < 0),
        "cut_by_server": len(cut),
        "still_open_at_end": sum(1 for r in results if r is None),
        "cut_after_s": {"min": round(cut[0], 2), "p50": round(cut[len(cut) // 2], 2), "max": round(cut[-1], 2)}
        if cut
        else None,
        "kind": kind,
    }


async def slow_headers(host: str, port: int, connections: int, until: float, every: float = 1.0) -> dict[str, Any]:
    head = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    drip = b"X-Slow: " + b"a" * 10_000
    results = await asyncio.gather(*(_dribble(host, port, head, drip, every, until) for _ in range(connections)))
    return _cut_summary("headers a byte at a time", list(results))


async def slow_bodies(host: str, port: int, connections: int, until: float, every: float = 1.0) -> dict[str, Any]:
    length = 100_000
    head = (
        f"POST /api/notes HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    drip = b" " * length
    results = await asyncio.gather(*(_dribble(host, port, head, drip, every, until) for _ in range(connections)))
    return _cut_summary("a body a byte at a time", list(results))
