"""``unistack deploy --target swarm`` on a real 3-node swarm (tests/swarm/harness.py: dockerd in network
namespaces, docker-registry on the manager), with tests/swarm/small (db gated on health -> migrate job -> api x2
-> global proxy). Prints one JSON object:

- ``deploy_s``: the wall time of the first ``unistack deploy`` (images pushed through the registry included), and
  ``critical_path_s``: the services' own readiness along the layers (per layer, the longest time from a task's
  creation to it running, or to completion for the job), so ``overhead_s`` is what unistack and Swarm add;
- ``redeploy_s``: ``deploy`` again with nothing changed;
- ``rolling_update``: the api updated start-first (an environment change) under a steady load through the
  manager's proxy: requests, failed, the failed-request window, the deploy's time;
- ``node_loss``: a worker running an api task killed under the same load: failed requests, their window, seconds
  until the api's two tasks run on the other nodes.

Not measured yet: ``docker stack deploy`` of the same file (the Docker CLI 20.10 reads Compose 3.x, which has no
``name`` or ``configs.content``). Run as root: ``.venv/bin/python bench/deploy.py`` (about 2 minutes).
"""

from __future__ import annotations

import json
import os
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
from tests.swarm.test_deploy import SMALL, _load, _tasks  # noqa: E402


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

        with tempfile.TemporaryDirectory() as folder:

            def update() -> dict[str, Any]:
                began = time.monotonic()
                result = unistack(swarm, "-f", SMALL, "deploy", "--registry", swarm.registry, env={"API_VERSION": "2"})
                return {"deploy_s": round(time.monotonic() - began, 2), "exit_code": result.returncode}

            report["rolling_update"] = under_load(swarm, Path(folder), update)

            def lose_a_worker() -> dict[str, Any]:
                client = swarm.manager.client()
                ids = {n.attrs["Status"]["Addr"]: n.id for n in client.nodes.list()}
                running = [t for t in _tasks(swarm, "small_api") if t["DesiredState"] == "running"]
                workers = [n for n in swarm.nodes[1:] if any(t["NodeID"] == ids[n.address] for t in running)]
                victim = workers[0] if workers else swarm.nodes[-1]
                began = time.monotonic()
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
        unistack(swarm, "-f", SMALL, "undeploy", "-v")
    finally:
        harness.stop(swarm)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["note"] = warning
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
