"""``unistack deploy --target swarm`` on a real 3-node swarm (tests/swarm/harness.py: dockerd in network
namespaces, docker-registry on the manager), with tests/swarm/small (db gated on health -> migrate job -> api x2
-> global proxy). Prints one JSON object:

- ``deploy_s``: the wall time of the first ``unistack deploy`` (images pushed through the registry included), and
  ``critical_path_s``: the services' own readiness along the layers (per layer, the longest time from a task's
  creation to it running, or to completion for the job), so ``overhead_s`` is what unistack and Swarm add;
- ``redeploy_s``: ``deploy`` again with nothing changed;
- ``label_only_redeploy``: ``deploy`` again with only the api's ``deploy.labels`` changed: the service updated,
  ``api_tasks_replaced`` its running tasks replaced (0: Swarm makes new tasks only for a changed task template);
- ``rolling_update``: the api updated start-first (an environment change) under a steady load through the
  manager's proxy: requests, failed, the failed-request window, the deploy's time;
- ``node_loss``: a worker running an api task killed under the same load: failed requests, their window, seconds
  until the api's two tasks run on the other nodes.

- ``docker_stack_deploy``: ``docker stack deploy`` of the same file on the same swarm after ``undeploy -v``, for
  comparison. It does not wait (``returned_s``), so ``healthy_s`` is when its services actually were (polling the
  tasks every 0.25 s, bounded by 180 s: db, 2 api tasks and the proxy on every node running, which for a
  healthchecked task means healthy, and migrate completed once). It ignores ``depends_on``: ``started_early``
  names the services whose first task was created before a dependency of theirs was running (healthy) or, for
  migrate, completed; ``failed_tasks``/``tasks`` per service (counted 20 s after all were healthy) what that cost,
  and ``migrate_runs`` the runs of a one-shot it restarts (``restart: "no"`` is ignored: Swarm's default restart
  policy is ``any``). ``changes`` lists what had to change in the file for it (the CLI's 3.x schema refuses ``name``,
  ``depends_on`` conditions, ``configs.content`` and ``secrets.environment``; the modes are the ones unistack
  picks here, since this kernel has no IPVS; the images are the registry references unistack pushed).

Run as root: ``.venv/bin/python bench/deploy.py`` (about 3 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench._common import busy_warning, environment, log  # noqa: E402
from tests.swarm import harness  # noqa: E402
from tests.swarm.conftest import IMAGES, unistack  # noqa: E402
from tests.swarm.test_deploy import SMALL, _get, _load, _tasks  # noqa: E402

STACK_DEPLOY_DEADLINE = 180.0
OBSERVED_AFTER = 20.0  # seconds past all healthy before the tasks are counted (a restarted one-shot shows)
DEPENDS = {"migrate": ["db"], "api": ["db", "migrate"], "proxy": ["api"]}


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


def critical_path(swarm: harness.Swarm) -> float:
    layers = [["db"], ["migrate"], ["api"], ["proxy"]]
    total = 0.0
    for layer in layers:
        spans = [
            _at(t["Status"]["Timestamp"]) - _at(t["CreatedAt"])
            for name in layer
            for t in _tasks(swarm, f"small_{name}")
            if t["Status"]["State"] in ("running", "complete")
        ]
        total += max(spans, default=0.0)
    return round(total, 2)


def stack_file(swarm: harness.Swarm, folder: Path, refs: dict[str, str]) -> tuple[Path, list[str]]:
    """tests/swarm/small as ``docker stack deploy`` takes it, and what was changed for it."""
    import yaml

    data = yaml.safe_load(Path(SMALL).read_text())
    changes = ["top-level name removed (the CLI's schema refuses it; the stack's name is its argument)"]
    data.pop("name")
    for name, service in data["services"].items():
        service["image"] = refs[name]
        if isinstance(service.get("depends_on"), dict):
            service["depends_on"] = list(service["depends_on"])
        service.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    changes += [
        "images: the registry references unistack pushed (the nodes pull them)",
        "depends_on conditions -> a list of names (the CLI refuses conditions; the list is ignored anyway)",
        "deploy.endpoint_mode: dnsrr on every service (no IPVS here: a VIP does not answer)",
        "proxy: ports mode host and deploy.mode global (no routing mesh without IPVS)",
        "secrets.greeting environment: -> file: (not in the CLI's schema)",
        "configs.caddyfile content: -> file: (not in the CLI's schema)",
    ]
    data["services"]["proxy"]["ports"] = [{"target": 8080, "published": 8080, "mode": "host"}]
    data["services"]["proxy"]["deploy"]["mode"] = "global"
    (folder / "greeting").write_text("hello")
    (folder / "Caddyfile").write_text(data["configs"]["caddyfile"]["content"])
    data["secrets"]["greeting"] = {"file": str(folder / "greeting")}
    data["configs"]["caddyfile"] = {"file": str(folder / "Caddyfile")}
    path = folder / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, changes


def stack_deploy(swarm: harness.Swarm, refs: dict[str, str]) -> dict[str, Any]:
    """``docker stack deploy`` of the same file, and when its services actually were healthy."""
    client = swarm.manager.client()
    with tempfile.TemporaryDirectory() as folder:
        path, changes = stack_file(swarm, Path(folder), refs)
        began = time.monotonic()
        done = subprocess.run(
            ["docker", "-H", swarm.manager.url, "stack", "deploy", "--resolve-image", "never",
             "-c", str(path), "small"],
            capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "API_VERSION": "1"},
        )  # fmt: skip
        returned = time.monotonic() - began
        if done.returncode != 0:
            return {"error": done.stderr.strip(), "changes": changes}
        healthy_s = None
        wanted = {"db": 1, "api": 2, "proxy": len(swarm.nodes)}
        ready: dict[str, float] = {}  # service -> seconds until it first was as wanted
        while time.monotonic() - began < STACK_DEPLOY_DEADLINE:
            tasks = {name: _tasks(swarm, f"small_{name}") for name in ("db", "migrate", "api", "proxy")}
            running = {n: sum(t["Status"]["State"] == "running" for t in ts) for n, ts in tasks.items()}
            now = round(time.monotonic() - began, 2)
            for name, count in wanted.items():
                if running[name] >= count:
                    ready.setdefault(name, now)
            if any(t["Status"]["State"] == "complete" for t in tasks["migrate"]):
                ready.setdefault("migrate", now)
            if len(ready) == 4:
                healthy_s = time.monotonic() - began
                break
            time.sleep(0.25)
        answers = _get(swarm, swarm.manager.address).startswith("ok from") if healthy_s is not None else False
        while time.monotonic() - began < (healthy_s or 0) + OBSERVED_AFTER:  # what it keeps doing afterwards
            time.sleep(0.5)
        tasks = {name: _tasks(swarm, f"small_{name}") for name in ("db", "migrate", "api", "proxy")}
        ready_at = {
            name: min(
                (_at(t["Status"]["Timestamp"]) for t in ts if t["Status"]["State"] in ("running", "complete")),
                default=None,
            )
            for name, ts in tasks.items()
        }
        early = sorted(
            name
            for name, deps in DEPENDS.items()
            if tasks[name]
            and any(
                ready_at[d] is None or min(_at(t["CreatedAt"]) for t in tasks[name]) < (ready_at[d] or 0) for d in deps
            )
        )
        report = {
            "returned_s": round(returned, 2),
            "healthy_s": round(healthy_s, 2) if healthy_s is not None else None,
            "ready_s": ready,
            "deadline_s": STACK_DEPLOY_DEADLINE,
            "proxy_answers": answers,
            "started_early": early,
            "tasks": {n: len(ts) for n, ts in tasks.items()},
            "failed_tasks": {n: sum(t["Status"]["State"] in ("failed", "rejected") for t in ts)
                             for n, ts in tasks.items()},
            "migrate_runs": sum(t["Status"]["State"] in ("complete", "failed") for t in tasks["migrate"]),
            "observed_after_healthy_s": OBSERVED_AFTER,
            "changes": changes,
            "cli": subprocess.run(["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                  text=True, timeout=30, check=False).stdout.strip(),
        }  # fmt: skip
        subprocess.run(
            ["docker", "-H", swarm.manager.url, "stack", "rm", "small"], capture_output=True, timeout=60, check=False
        )
        deadline = time.monotonic() + 60
        while client.api.services(filters={"label": "com.docker.stack.namespace=small"}) or client.networks.list(
            filters={"label": "com.docker.stack.namespace=small"}
        ):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return report


def under_load(swarm: harness.Swarm, folder: Path, action: Any) -> dict[str, Any]:
    stop_file = folder / f"stop-{time.monotonic_ns()}"
    load = _load(swarm, stop_file)
    try:
        extra = action()
    finally:
        stop_file.touch()
        out, _ = load.communicate(timeout=60)
    return {**json.loads(out), **extra}


def main() -> int:
    report: dict[str, Any] = environment()
    swarm = harness.start(3)
    try:
        for image in IMAGES:
            harness.push_image(swarm, image)
        started = time.monotonic()
        done = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry)
        if done.returncode != 0:
            log(done.stderr)
            return 1
        report["deploy_s"] = round(time.monotonic() - started, 2)
        report["critical_path_s"] = critical_path(swarm)
        report["overhead_s"] = round(report["deploy_s"] - report["critical_path_s"], 2)
        started = time.monotonic()
        unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry)
        report["redeploy_s"] = round(time.monotonic() - started, 2)
        before = {t["ID"] for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"}
        started = time.monotonic()
        labelled = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"RELEASE": "2"})
        after = {t["ID"] for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"}
        report["label_only_redeploy"] = {
            "deploy_s": round(time.monotonic() - started, 2),
            "exit_code": labelled.returncode,
            "api_tasks_replaced": len(before - after),
        }

        with tempfile.TemporaryDirectory() as folder:

            def update() -> dict[str, Any]:
                began = time.monotonic()
                result = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"API_VERSION": "2"})
                return {"deploy_s": round(time.monotonic() - began, 2), "exit_code": result.returncode}

            report["rolling_update"] = under_load(swarm, Path(folder), update)

            stopped: list[harness.Node] = []

            def lose_a_worker() -> dict[str, Any]:
                client = swarm.manager.client()
                ids = {n.attrs["Status"]["Addr"]: n.id for n in client.nodes.list()}
                running = [t for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"]
                workers = [n for n in swarm.nodes[1:] if any(t["NodeID"] == ids[n.address] for t in running)]
                victim = workers[0] if workers else swarm.nodes[-1]
                began = time.monotonic()
                stopped.append(victim)
                harness.stop_node(victim)
                while time.monotonic() - began < 120:
                    tasks = _tasks(swarm, "small_api")
                    moved = [
                        t
                        for t in tasks
                        if t["Status"]["State"] == "running"
                        and t["DesiredState"] == "running"
                        and t["NodeID"] != ids[victim.address]
                    ]
                    if len(moved) >= 2:
                        break
                    time.sleep(0.5)
                return {"rescheduled_s": round(time.monotonic() - began, 2), "victim_ran_an_api_task": bool(workers)}

            report["node_loss"] = under_load(swarm, Path(folder), lose_a_worker)
        client = swarm.manager.client()
        for node in stopped:  # back, so that docker stack deploy has the same 3 nodes
            harness.restart_node(node)
        deadline = time.monotonic() + 90
        while not all(n.attrs["Status"]["State"] == "ready" for n in client.nodes.list()):
            if time.monotonic() > deadline:
                log("a restarted node is not ready after 90 s")
                break
            time.sleep(0.5)
        refs = {
            s["Spec"]["Labels"]["com.docker.stack.service"]: s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split(
                "@"
            )[0]
            for s in client.api.services(filters={"label": "com.docker.stack.namespace=small"})
        }
        unistack(swarm, "-f", SMALL, "undeploy", "-v")
        report["docker_stack_deploy"] = stack_deploy(swarm, refs)
    finally:
        harness.stop(swarm)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["note"] = warning
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
