"""The typed, immutable project model: what the engine and runtimes read.

Data only: built by ``config.load`` from the resolved Compose document, never read from files here and never
changed after it is built. Durations are seconds (float), sizes are bytes (int). Vocabularies are closed and
spelled as Compose spells them. ``spec`` fields keep the resolved Compose mapping (long syntax) for what only
a runtime or ``unistack config`` needs (image, build, networks, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]
RestartMode = Literal["no", "always", "on-failure", "unless-stopped"]
HealthKind = Literal["CMD", "CMD-SHELL"]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Dependency(Model):
    """One entry of a service's ``depends_on`` (long syntax)."""

    condition: Condition = "service_started"
    required: bool = True
    restart: bool = False


class Healthcheck(Model):
    """An enabled healthcheck (``test: NONE`` or ``disable: true`` is represented as no Healthcheck)."""

    kind: HealthKind
    test: tuple[str, ...]  # CMD: argv; CMD-SHELL: one shell command string
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = Field(default=3, ge=0)
    start_period: float = 0.0
    start_interval: float = 5.0


class RestartPolicy(Model):
    """``restart`` (or ``deploy.restart_policy``) merged with ``x-unistack.restart``.

    ``max_attempts`` None means unlimited. Backoff: the first restart is immediate, then ``backoff_initial``
    doubling up to ``backoff_max``; the attempt count resets after the service ran ``reset_after`` seconds.
    """

    mode: RestartMode = "no"
    max_attempts: int | None = Field(default=None, ge=0)
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    reset_after: float = 60.0


class Port(Model):
    """A published port: where the service is reachable from the host."""

    host_ip: str = ""
    published: int | None = None
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"


class ProcessSpec(Model):
    """``x-unistack.process``: how to run the service as a host process."""

    command: tuple[str, ...]  # argv; a string command is stored as ("/bin/sh", "-c", string)
    setup: tuple[str, ...] = ()  # run to completion before the first start of each ``up`` (installs, builds)
    working_dir: Path
    environment: dict[str, str] = Field(default_factory=dict)


class Service(Model):
    name: str
    depends_on: dict[str, Dependency] = Field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: RestartPolicy = RestartPolicy()
    stop_signal: str = "SIGTERM"
    stop_grace_period: float = 10.0
    environment: dict[str, str] = Field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    profiles: tuple[str, ...] = ()
    process: ProcessSpec | None = None
    spec: dict[str, Any] = Field(default_factory=dict)  # the resolved Compose service mapping


class Notifier(Model):
    """One entry of top-level ``x-unistack.notify``: exactly one of command or webhook."""

    command: tuple[str, ...] | None = None
    webhook: str | None = None
    timeout: float = 10.0


class Project(Model):
    name: str
    environment: str  # the environment name (local, staging, production, ...)
    working_dir: Path  # the folder of the first compose file
    files: tuple[Path, ...]
    state_dir: Path  # this instance's state folder (.unistack/<project>/)
    services: dict[str, Service]
    volumes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notify: tuple[Notifier, ...] = ()
    variables: dict[str, str] = Field(default_factory=dict)  # the interpolation environment (for redaction)
    spec: dict[str, Any] = Field(default_factory=dict)  # the whole resolved Compose document

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"
