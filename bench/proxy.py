"""What the reverse proxy costs: the same API reads straight to the backend's unix socket and through Caddy.

Static, production-like mode (FRONTEND_MODE=static, COMPOSE_PROFILES=static, BACKEND_RELOAD=0). The load generator
is ``h2load`` (Debian's nghttp2-client: native, HTTP/1.1 keep-alive with ``--h1``, unix sockets with
``-B unix:PATH`` as well as TCP), one thread, no pipelining, the same concurrency for every phase. Each phase gets
``--seconds`` of measurement, split into ``--rounds`` segments that alternate with the other phases of its group
(direct, proxy, direct, proxy, ...), so that a busy machine's drift hits both sides alike; one unmeasured warm-up
run per phase comes first. Latency percentiles come from h2load's per-request log (``--log-file``).

Groups of phases:

- ceiling: h2load against a trivial server (a throw-away Caddy answering "ok" on a unix socket and on TCP): what
  the generator itself can drive here, so readers can tell whether it was the limit;
- health: ``GET /api/health`` direct (unix socket) and through Caddy (TCP 127.0.0.1:port);
- notes: ``GET /api/notes`` with ``--seed`` notes in the database (created here, deleted at the end), both ways,
  and through Caddy with a browser's Accept-Encoding (Caddy then compresses the JSON: ``encode zstd gzip``);
- asset: ``/_proxy/health`` (Caddy answers it itself, no access-log line: Caddy's fixed cost per request), then
  the hashed entry script under ``/assets/`` plain and with a browser's Accept-Encoding (compressed on the fly:
  no precompressed files).

For every phase: requests per second (and per round), p50/p90/p99/max latency, and the CPU used meanwhile, in %
of one core and in CPU-ms per request, by the backend, Caddy, PostgreSQL (with its connection processes), the
unistack daemon (itself only) and h2load, plus the whole machine and "everything else" (other instances, other
work: on a shared 2-core machine this is often the largest figure). ``capacity_rps_if_alone`` turns the CPU per
request into the requests/s the machine could serve if nothing else ran (see ``capacity()``); the ratios are
given both measured and from that model. Prints one JSON object on stdout; progress goes to stderr. Every loop is
bounded: phases are timed runs of h2load, each with a subprocess timeout.

  apt-get install -y nghttp2-client          # h2load
  .venv/bin/python bench/proxy.py [--seconds 10] [--concurrency 16] [--rounds 5] [--port 18090] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from _common import busy_warning, environment, log
from reload import STACK, StackInstance, raise_interrupted

H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
CADDY = STACK / "proxy" / ".venv" / "bin" / "caddy"
DIST = STACK / "frontend" / "dist"
TARGET_RATIO = 0.8
ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends
BROWSER_ENCODING = f"accept-encoding: {ACCEPT_ENCODING}"

TRIVIAL_CADDYFILE = """\
{{
\tadmin off
\tauto_https off
\tpersist_config off
}}
http://127.0.0.1:{port} {{
\tbind 127.0.0.1 unix/{sock}
\trespond "ok" 200
}}
"""


# --- the load generator --------------------------------------------------------------------------------------------


def percentiles(log_files: list[Path]) -> dict[str, float | None]:
    """p50/p90/p99/max in ms from h2load's logs: start (us since epoch), status, duration (us) per request."""
    durations = []
    for log_file in log_files:
        with contextlib.suppress(OSError):
            for line in log_file.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1].lstrip("-").isdigit() and int(parts[1]) > 0:
                    durations.append(int(parts[2]) / 1000)
    if not durations:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    durations.sort()

    def pct(p: float) -> float:
        return round(durations[min(len(durations) - 1, int(p / 100 * len(durations)))], 2)

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(durations[-1], 2)}


def h2load(
    url: str,
    *,
    unix: Path | None,
    concurrency: int,
    seconds: float,
    headers: tuple[str, ...] = (),
    log_file: Path | None,
) -> dict[str, Any]:
    argv = [H2LOAD, "--h1", "-t", "1", "-c", str(concurrency), "-m", "1", "-D", f"{round(seconds * 1000)}ms"]
    if unix is not None:
        argv += ["-B", f"unix:{unix}"]
    for header in headers:
        argv += ["-H", header]
    if log_file is not None:
        argv += ["--log-file", str(log_file)]
    argv.append(url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = res.stdout
    if res.returncode != 0 or "finished in" not in out:
        raise RuntimeError(f"h2load failed ({res.returncode}): {' '.join(argv)}\n{out[-2000:]}\n{res.stderr[-2000:]}")
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    reqs = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    traffic = re.search(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data", out)
    if not (finished and reqs and codes):
        raise RuntimeError(f"cannot read h2load's summary: {' '.join(argv)}\n{out[-2000:]}")
    done = int(reqs.group(2))
    result: dict[str, Any] = {
        "command": " ".join(argv),
        "rps": round(float(finished.group(3)), 1),
        "duration_s": float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1),
        "requests": done,
        "failed": int(reqs.group(4)) + int(reqs.group(5)),
        "non_2xx": int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4)),
        "h2load_cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 3),
    }
    if traffic and done:
        result["response_bytes_mean"] = round((int(traffic.group(2)) + int(traffic.group(3))) / done)
    if log_file is not None:
        result.update(percentiles([log_file]))
    return result


# --- CPU accounting ------------------------------------------------------------------------------------------------


class CpuWatch:
    """CPU seconds (user + system) of named process trees, and of the whole machine, between snapshots."""

    def __init__(self, pids: dict[str, int | None], alone: tuple[str, ...] = ()) -> None:
        """``alone``: names counted without their children (the daemon's children are the services themselves)."""
        self.procs: dict[str, psutil.Process] = {}
        self.alone = alone
        for name, pid in pids.items():
            if pid:
                with contextlib.suppress(psutil.Error):
                    self.procs[name] = psutil.Process(pid)

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.is_running()]

    def snapshot(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        snap = {"_wall": time.monotonic(), "_machine_busy": sum(machine) - idle, "_machine_total": sum(machine)}
        for name, proc in self.procs.items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                for p in [proc] if name in self.alone else [proc, *proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = p.cpu_times()
                        total += t.user + t.system
            snap[name] = total
        return snap


class Usage:
    """CPU used during the measured segments of one phase, summed over its rounds."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}

    def add(self, a: dict[str, float], b: dict[str, float], h2load_cpu_s: float) -> None:
        for key in a:
            self.sums[key] = self.sums.get(key, 0.0) + max(0.0, b[key] - a[key])
        self.sums["h2load"] = self.sums.get("h2load", 0.0) + h2load_cpu_s

    def report(self, requests: int) -> dict[str, Any]:
        wall = self.sums.get("_wall", 0.0)
        if wall <= 0:
            return {}
        out: dict[str, Any] = {}
        ours = 0.0
        for name, cpu in self.sums.items():
            if name.startswith("_"):
                continue
            ours += cpu
            out[name] = {
                "cpu_pct_of_one_core": round(100 * cpu / wall, 1),
                "cpu_ms_per_request": round(1000 * cpu / requests, 3) if requests else None,
            }
        total = self.sums.get("_machine_total", 0.0)
        busy = self.sums.get("_machine_busy", 0.0)
        cores = os.cpu_count() or 1
        out["machine_busy_pct_of_all_cores"] = round(100 * busy / total, 1) if total else None
        # what the machine spent on anything not listed above (other instances, other work on this machine)
        out["everything_else_pct_of_one_core"] = round(100 * max(0.0, busy / total * cores * wall - ours) / wall, 1)
        return out


def capacity(cpu: dict[str, Any]) -> float | None:
    """Requests/s this machine could serve if nothing else ran on it, from the CPU each process spent per request.

    The backend is one Python process (one core at most, the GIL); Caddy and PostgreSQL can use every core;
    everything together cannot exceed the machine's cores. A model, not a measurement: it takes the CPU cost per
    request as measured and assumes it stays the same on an idle machine.
    """
    per_req = {k: v["cpu_ms_per_request"] for k, v in cpu.items() if isinstance(v, dict) and v["cpu_ms_per_request"]}
    if not per_req.get("backend") and not per_req.get("caddy"):
        return None
    cores = os.cpu_count() or 1
    bounds = [cores * 1000 / sum(per_req.values())]
    if per_req.get("backend"):
        bounds.append(1000 / per_req["backend"])
    return round(min(bounds), 1)


# --- the stack side ------------------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data else {}
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), raw
    finally:
        conn.close()


def seed_notes(port: int, count: int) -> list[int]:
    created = []
    for k in range(count):
        body = {"title": f"bench note {k + 1}", "body": "Seeded by bench/proxy.py. " * 8}
        status, _, raw = request(port, "POST", "/api/notes", body)
        if status != 201:
            raise RuntimeError(f"POST /api/notes answered {status}: {raw[:300]!r}")
        created.append(int(json.loads(raw)["id"]))
    return created


def delete_notes(port: int, ids: list[int]) -> int:
    deleted = 0
    for note_id in ids:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = request(port, "DELETE", f"/api/notes/{note_id}")
            deleted += status in (204, 404)
    return deleted


def hashed_asset() -> str:
    """The entry script that dist/index.html loads (content-hashed name under /assets/)."""
    html = (DIST / "index.html").read_text()
    match = re.search(r'src="(/assets/[^"]+\.js)"', html)
    if match is None:
        raise RuntimeError(f"no /assets/*.js script in {DIST / 'index.html'}")
    return match.group(1)


# --- the ceiling ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ceiling(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """h2load against a throw-away Caddy that answers "ok" itself, on a unix socket and on TCP."""
    port, sock = free_port(), tmp / "trivial.sock"
    (tmp / "Caddyfile").write_text(TRIVIAL_CADDYFILE.format(port=port, sock=sock))
    env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "data"), "XDG_CONFIG_HOME": str(tmp / "cfg")}
    with open(tmp / "trivial-caddy.log", "wb") as out:
        proc = subprocess.Popen(
            [str(CADDY), "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while not (sock.exists() and port_open(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the trivial Caddy did not start: {(tmp / 'trivial-caddy.log').read_text()[-800:]}")
            time.sleep(0.05)
        out_: dict[str, Any] = {"server": f'{CADDY} with `respond "ok"` (no logging, no headers)'}
        watch = CpuWatch({"trivial_caddy": proc.pid})
        secs = min(args.seconds, 5)
        for name, unix in (("unix", sock), ("tcp", None)):
            url = f"http://127.0.0.1:{port}/"
            h2load(url, unix=unix, concurrency=args.concurrency, seconds=1, log_file=None)
            usage = Usage()
            a = watch.snapshot()
            res = h2load(url, unix=unix, concurrency=args.concurrency, seconds=secs, log_file=tmp / f"ceil-{name}.log")
            usage.add(a, watch.snapshot(), res.pop("h2load_cpu_s"))
            res["cpu"] = usage.report(res["requests"])
            out_[name] = res
            log(f"ceiling {name}: {res['rps']} req/s, p99 {res['p99_ms']} ms")
        return out_
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- main ----------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="bench")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration of each phase (1..30)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured run before each phase (0..10)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections (1..64)")
    parser.add_argument("--rounds", type=int, default=5, help="each phase's time split into rounds that alternate")
    parser.add_argument("--skip-extra", action="store_true", help="leave out the browser Accept-Encoding phases")
    parser.add_argument("--seed", type=int, default=5, help="notes created for GET /api/notes (0..100)")
    parser.add_argument("--keep", action="store_true", help="leave the instance up")
    args = parser.parse_args()
    args.seconds = min(max(args.seconds, 1.0), 30.0)
    args.warmup = min(max(args.warmup, 0.0), 10.0)
    args.concurrency = min(max(args.concurrency, 1), 64)
    args.seed = min(max(args.seed, 0), 100)
    args.rounds = min(max(args.rounds, 1), 10)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupted)

    report: dict[str, Any] = {"benchmark": "proxy", "command": " ".join([sys.executable, *sys.argv])}
    report.update(environment())
    report["load_generator"] = {
        "tool": H2LOAD,
        "version": subprocess.run([H2LOAD, "--version"], capture_output=True, text=True).stdout.strip(),
        "protocol": "HTTP/1.1 keep-alive (--h1), no pipelining (-m 1), 1 thread",
        "concurrency": args.concurrency,
        "seconds_per_phase": args.seconds,
        "warmup_s_per_phase": args.warmup,
        "rounds": args.rounds,
    }
    inst = StackInstance(args.project, args.port, "static")
    failed = False
    seeded: list[int] = []
    tmp = Path(tempfile.mkdtemp(prefix="unistack-bench-proxy-"))
    try:
        report["instance"] = inst.up()
        report["ceiling"] = ceiling(args, tmp)
        pids = {
            "backend": inst.pid("backend"),
            "caddy": inst.pid("proxy"),
            "postgres": inst.pid("db"),
            "unistack_daemon": _daemon_pid(inst),
        }
        backend_cmd = " ".join(psutil.Process(pids["backend"]).cmdline()) if pids["backend"] else ""
        report["backend_command"] = backend_cmd
        if "--reload" in backend_cmd:
            raise RuntimeError("the backend runs with --reload: BACKEND_RELOAD=0 is not in effect")
        watch = CpuWatch(pids, alone=("unistack_daemon",))

        status, _, raw = request(args.port, "GET", "/api/notes")
        before = len(json.loads(raw)) if status == 200 else None
        seeded = seed_notes(args.port, args.seed)
        asset = hashed_asset()
        status, headers, raw = request(args.port, "GET", asset)
        _, zheaders, zraw = request(args.port, "GET", asset, headers={"Accept-Encoding": ACCEPT_ENCODING})
        report["payloads"] = {
            "notes_in_database": (before or 0) + len(seeded),
            "notes_seeded": len(seeded),
            "api_notes_bytes": len(request(args.port, "GET", "/api/notes")[2]),
            "asset": asset,
            "asset_bytes": len(raw),
            "asset_status": status,
            "asset_cache_control": headers.get("Cache-Control"),
            "asset_encoded_bytes": len(zraw),
            "asset_encoding_chosen": zheaders.get("Content-Encoding"),
        }

        sock = inst.run_dir / "backend.sock"
        base = f"http://127.0.0.1:{args.port}"
        # (group, phase, path, unix socket or None for Caddy over TCP, extra headers); a group's phases alternate
        plan: list[tuple[str, str, str, Path | None, tuple[str, ...]]] = [
            ("health", "health_direct", "/api/health", sock, ()),
            ("health", "health_proxy", "/api/health", None, ()),
            ("notes", "notes_direct", "/api/notes", sock, ()),
            ("notes", "notes_proxy", "/api/notes", None, ()),
            ("notes", "notes_proxy_browser_encoding", "/api/notes", None, (BROWSER_ENCODING,)),
            ("asset", "caddy_self", "/_proxy/health", None, ()),  # Caddy answers itself: no upstream, no access log
            ("asset", "asset_proxy", asset, None, ()),
            ("asset", "asset_proxy_browser_encoding", asset, None, (BROWSER_ENCODING,)),
        ]
        if args.skip_extra:
            plan = [p for p in plan if not p[1].endswith("browser_encoding") and p[1] != "caddy_self"]
        results: dict[str, Any] = {}
        segment = args.seconds / args.rounds
        for group in dict.fromkeys(p[0] for p in plan):
            members = [p for p in plan if p[0] == group]
            acc: dict[str, dict[str, Any]] = {p[1]: {"usage": Usage(), "runs": [], "logs": []} for p in members}
            for _, _name, path, unix, hdrs in members:
                if args.warmup:
                    h2load(
                        base + path,
                        unix=unix,
                        concurrency=args.concurrency,
                        seconds=args.warmup,
                        headers=hdrs,
                        log_file=None,
                    )
            for rnd in range(args.rounds):
                for _, name, path, unix, hdrs in members:
                    if dead := [n for n in ("backend", "caddy") if n not in watch.alive()]:
                        raise RuntimeError(f"{', '.join(dead)} of the instance is no longer running")
                    log_file = tmp / f"{name}-{rnd}.log"
                    a = watch.snapshot()
                    res = h2load(
                        base + path,
                        unix=unix,
                        concurrency=args.concurrency,
                        seconds=segment,
                        headers=hdrs,
                        log_file=log_file,
                    )
                    acc[name]["usage"].add(a, watch.snapshot(), res["h2load_cpu_s"])
                    acc[name]["runs"].append(res)
                    acc[name]["logs"].append(log_file)
            for _, name, path, unix, hdrs in members:
                runs = acc[name]["runs"]
                requests = sum(r["requests"] for r in runs)
                duration = sum(r["duration_s"] for r in runs)
                res = {
                    "url": base + path,
                    "via": f"unix:{unix}" if unix else f"Caddy, TCP 127.0.0.1:{args.port}",
                    "headers": list(hdrs),
                    "rps": round(requests / duration, 1) if duration else None,
                    "requests": requests,
                    "duration_s": round(duration, 2),
                    "rounds_rps": [r["rps"] for r in runs],
                    "failed": sum(r["failed"] for r in runs),
                    "non_2xx": sum(r["non_2xx"] for r in runs),
                    "response_bytes_mean": runs[0].get("response_bytes_mean"),
                    **percentiles(acc[name]["logs"]),
                    "cpu": acc[name]["usage"].report(requests),
                    "h2load_command": runs[0]["command"],
                }
                res["capacity_rps_if_alone"] = capacity(res["cpu"])
                results[name] = res
                cpu = {k: v["cpu_pct_of_one_core"] for k, v in res["cpu"].items() if isinstance(v, dict)}
                log(f"{name}: {res['rps']} req/s, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, cpu% {cpu}")
                if res["failed"] or res["non_2xx"]:
                    failed = True
        report["phases"] = results
        ratios = {}
        for what in ("health", "notes"):
            d, p = results[f"{what}_direct"], results[f"{what}_proxy"]
            ratios[what] = {
                "rps_proxy_over_direct": round(p["rps"] / d["rps"], 3) if d["rps"] else None,
                "p50_added_ms": round(p["p50_ms"] - d["p50_ms"], 2) if p["p50_ms"] and d["p50_ms"] else None,
                "p99_added_ms": round(p["p99_ms"] - d["p99_ms"], 2) if p["p99_ms"] and d["p99_ms"] else None,
            }
            cd, cp = d["capacity_rps_if_alone"], p["capacity_rps_if_alone"]
            ratios[what]["capacity_proxy_over_direct"] = round(cp / cd, 3) if cd and cp else None
            ratios[what]["target_met"] = (ratios[what]["rps_proxy_over_direct"] or 0) >= TARGET_RATIO
        report["ratios"] = ratios
        report["target_ratio"] = TARGET_RATIO
    except (Exception, KeyboardInterrupt) as exc:  # reported in the JSON; exit 1
        failed = True
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if seeded:
            report["notes_deleted"] = delete_notes(args.port, seeded)
        if inst.brought_up and not args.keep:
            report["teardown"] = inst.down()
        else:
            report["teardown"] = "left up (" + ("--keep" if args.keep else "it was up before this run") + ")"
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if note := busy_warning(report):
        report["warning"] = note
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


def _daemon_pid(inst: StackInstance) -> int | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pid = json.loads((inst.state_dir / "state.json").read_text()).get("daemon_pid")
        return int(pid) if pid else None
    return None


if __name__ == "__main__":
    sys.exit(main())
