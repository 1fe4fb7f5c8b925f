"""Installing a service's changed dependencies into its running container (``x-unistack.dependencies``), with no
image build.

Owns one install: the manifests copied to their ``target`` in the container (owned by the container's user), the
host's CA bundle copied to ``/tmp/unistack-ca.crt`` and named by ``PIP_CERT``, ``NODE_EXTRA_CA_CERTS`` and
``SSL_CERT_FILE`` for the install only (where the container does not set them itself; an intercepting HTTPS
proxy then works as in image builds), and the install command run with exec as the container's user in its
working folder, its output going line by line to the service's build log. The copies live in the container's
writable layer: they survive a restart of the same container; a new container starts from its image, which is
built from the same manifests by then (they are in its build context). Images are never changed or committed.
Docker errors become RuntimeFailure here. Never decides when to install or restart.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from unistack.config.model import Service
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import ProbeResult
from unistack.runtimes.docker import filecopy, images
from unistack.runtimes.docker.engine import Errors, close_stream, connect, explain, is_local

CA_TARGET = "/tmp/unistack-ca.crt"
CA_VARIABLES = ("PIP_CERT", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE")
OUTPUT_KEPT = 64 * 1024  # bytes of output kept for the summary of what was installed
SLACK = 60  # seconds the client waits beyond the install's own timeout before it gives up on the engine


class Install:
    """One install inside a running container; ``abandon`` ends it (from another thread) when it is cancelled."""

    def __init__(
        self, environ: Mapping[str, str], container_id: str, service: Service, emit: Callable[[str], None]
    ) -> None:
        self.environ, self.container_id, self.service, self.emit = environ, container_id, service, emit
        self.client: Any = None
        self.exec_id: str | None = None
        self.stream: Any = None

    def run(self) -> ProbeResult:
        deps = self.service.dependencies
        if deps is None or not deps.install:
            return ProbeResult(False, None, f"{self.service.name} has no x-unistack.dependencies.install")
        self.client = connect(self.environ)
        self.client.api.timeout = int(deps.timeout) + SLACK  # an install may print nothing for a while
        try:
            return self._run(list(deps.install))
        except Errors as exc:
            raise RuntimeFailure(f"cannot install in the container of {self.service.name}: {explain(exc)}") from exc
        finally:
            self.client.close()

    def _run(self, argv: list[str]) -> ProbeResult:
        api = self.client.api
        info = api.inspect_container(self.container_id)
        if not info["State"].get("Running"):
            return ProbeResult(False, None, f"the container of {self.service.name} is not running")
        owner = filecopy.container_owner(self.client, self.container_id)[1] or (0, 0)
        deps = self.service.dependencies
        assert deps is not None
        manifests = [(m.target, m.path) for m in deps.manifests if m.target is not None and m.path.is_file()]
        copied = filecopy.copy_into(self.client, self.container_id, manifests, owner)
        self.emit(f"copied {copied} manifest{'' if copied == 1 else 's'} into the container; running {' '.join(argv)}")
        environment = self._certificates(info, owner)
        self.exec_id = str(
            api.exec_create(self.container_id, argv, stdout=True, stderr=True, environment=environment)["Id"]
        )
        self.stream = api.exec_start(self.exec_id, stream=True)
        output = bytearray()
        pending = b""
        try:
            with contextlib.suppress(*Errors, OSError):
                for chunk in self.stream:
                    output += chunk
                    del output[:-OUTPUT_KEPT]
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        self.emit(line.decode("utf-8", "replace").rstrip("\r"))
        finally:
            close_stream(self.stream)
        if pending:
            self.emit(pending.decode("utf-8", "replace"))
        code = api.exec_inspect(self.exec_id).get("ExitCode")
        text = output.decode("utf-8", "replace")
        if code is None:
            return ProbeResult(False, None, text or "the install ended without an exit code")
        return ProbeResult(code == 0, int(code), text)

    def _certificates(self, info: Mapping[str, Any], owner: tuple[int, int]) -> dict[str, str]:
        """The host's CA bundle in the container, for the install's pip or npm (never in an image)."""
        bundle = images.ca_bundle()
        if bundle is None:
            return {}
        filecopy.copy_into(self.client, self.container_id, [(CA_TARGET, bundle)], owner)
        present = {str(item).partition("=")[0] for item in (info.get("Config") or {}).get("Env") or []}
        return {name: CA_TARGET for name in CA_VARIABLES if name not in present}

    def abandon(self) -> None:
        """Close the output stream and kill the install's processes (when the engine runs on this machine)."""
        if self.stream is not None:
            close_stream(self.stream)
        if self.exec_id is None or self.client is None or not is_local(self.environ):
            return
        with contextlib.suppress(Exception):
            pid = int(self.client.api.exec_inspect(self.exec_id).get("Pid") or 0)
            if pid:
                leader = psutil.Process(pid)
                for proc in [*leader.children(recursive=True), leader]:
                    with contextlib.suppress(psutil.Error, OSError):
                        os.kill(proc.pid, signal.SIGKILL)
