"""The real stack (stack/, production: hardened containers, static frontend) deployed on the 3-node swarm: in
order (db healthy, migrate and frontend-build complete, backend healthy, then the proxy on every node), the
database reached through the internal overlay network, the page and the API answering on every node's address,
and undeploy -v leaving nothing of it."""

from __future__ import annotations

import os
import subprocess
import sys

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
    finally:
        gone = unistack(swarm, "-f", STACK, "--env", "production", "undeploy", "-v", env=env)
    assert gone.returncode == 0, gone.stderr
    client = swarm.manager.client()
    label = {"label": "com.docker.stack.namespace=stack-production"}
    assert not client.api.services(filters=label) and not client.volumes.list(filters=label)
