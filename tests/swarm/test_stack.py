"""The real stack (stack/, production: hardened containers, static frontend) deployed on the 3-node swarm: in
order (db healthy, migrate and frontend-build complete, backend healthy, then the proxy on every node), the
database reached through the internal overlay network, the page and the API answering on every node's address,
``validate --target swarm --browser`` passing through every node's entry point (the page in headless Chromium
too), naming the backend once it is scaled to 0, and undeploy -v leaving nothing of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.swarm import harness
from tests.swarm.conftest import ROOT, UNISTACK, unistack

pytestmark = pytest.mark.swarm

STACK = str(ROOT / "stack" / "compose.yaml")
IMAGES = ("stack-db", "stack-backend", "stack-frontend")  # stack-proxy and the base: conftest
PORT = 8082  # environments/production.env


def _get(swarm: harness.Swarm, address: str, path: str) -> str:
    """GET through a node's proxy, from inside the manager's namespace; the stack's site is 127.0.0.1:PORT."""
    program = (
        "import urllib.request; r = urllib.request.Request("
        f"'http://{address}:{PORT}{path}', headers={{'Host': '127.0.0.1:{PORT}'}}); "
        "print(urllib.request.urlopen(r, timeout=10).read().decode())"
    )
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", sys.executable, "-c", program],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else f"failed: {done.stderr[-300:]}"


def _validate(swarm: harness.Swarm, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``validate --target swarm`` from inside the manager's namespace (the nodes' addresses exist only there)."""
    environ = {**os.environ, **env, "DOCKER_HOST": swarm.manager.url}
    environ.pop("UNISTACK_ENV", None)
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{swarm.manager.netns}", str(UNISTACK), "-f", STACK, "--env", "production",
         "validate", "--target", "swarm", "--format", "json", *args],
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    sys.stderr.write(done.stdout + done.stderr)
    return done


def test_the_stack_deploys_in_order_and_answers_on_every_node(swarm: harness.Swarm) -> None:
    env = {"POSTGRES_PASSWORD": "swarm-test-pw"}
    built = subprocess.run(
        [str(UNISTACK), "-f", STACK, "--env", "production", "build", "--bootstrap"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    for image in IMAGES:
        harness.push_image(swarm, image)
    try:
        done = unistack(
            swarm, "-f", STACK, "--env", "production", "deploy", "--registry", swarm.registry, "--timeout", "240",
            env=env, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        said = done.stdout + done.stderr
        assert said.index("db: created, healthy") < said.index("migrate: completed") < said.index("backend: created")
        assert said.index("frontend-build: completed") < said.index("proxy: created, healthy")
        assert said.index("backend: created, healthy") < said.index("proxy: created, healthy")
        for node in swarm.nodes:
            ready = _get(swarm, node.address, "/api/ready")
            assert '"database":{"ok":true' in ready, (node.name, ready)
            assert "<!doctype html>" in _get(swarm, node.address, "/"), node.name  # every node's frontend-dist
        data = swarm.manager.client().networks.get("stack-production_data")
        assert data.attrs["Internal"] is True

        valid = _validate(swarm, env)
        assert valid.returncode == 0, valid.stdout
        results = json.loads(valid.stdout)
        for node in swarm.nodes:  # the entry-point checks through each node's address
            verdicts = [r["verdict"] for r in results if r["name"].endswith(f"@ {node.address}")]
            assert verdicts.count("pass") >= 10 and set(verdicts) <= {"pass", "skip"}, (node.name, verdicts)
        # the page in headless Chromium (.ci/run installs Debian's) through each node, at the site's own name with
        # Chromium's host resolver sending it to the node; every check with time to spare: three browsers
        # starting at once on a shared 2-core machine slow every answer (5 s was too little for /api/ready once)
        page = _validate(swarm, env, "--browser", "--timeout", "30")
        assert page.returncode == 0, page.stdout
        for node in swarm.nodes:
            (loaded,) = [r for r in json.loads(page.stdout) if r["name"] == f"page renders the notes @ {node.address}"]
            assert loaded["verdict"] == "pass" and "http://127.0.0.1:8082/" in loaded["detail"], loaded
        one = _validate(swarm, env, "--node", swarm.nodes[1].address, "backend")
        assert one.returncode == 0 and "@" not in one.stdout, one.stdout

        client = swarm.manager.client()
        client.services.get("stack-production_backend").scale(0)
        deadline = time.monotonic() + 60
        while any(
            t["Status"]["State"] == "running" and t["DesiredState"] == "running"
            for t in client.api.tasks(filters={"service": "stack-production_backend"})
        ):
            assert time.monotonic() < deadline, "the backend's tasks still run 60 s after scaling it to 0"
            time.sleep(0.5)
        broken = _validate(swarm, env)
        assert broken.returncode == 1, broken.stdout
        failed = [r for r in json.loads(broken.stdout) if r["verdict"] == "fail"]
        (ready,) = [r for r in failed if r["name"] == "backend ready"]
        assert ready["component"] == "backend" and "scaled to 0" in ready["detail"], ready
        assert "unistack deploy" in ready["hint"]
        assert any(r["name"] == "configuration unchanged" and "replicas 0" in r["detail"] for r in failed), failed
    finally:
        gone = unistack(swarm, "-f", STACK, "--env", "production", "undeploy", "-v", env=env)
    assert gone.returncode == 0, gone.stderr
    client = swarm.manager.client()
    label = {"label": "com.docker.stack.namespace=stack-production"}
    assert not client.api.services(filters=label) and not client.volumes.list(filters=label)
