"""The typed, immutable project model: what the engine and runtimes read.

Data only: built by ``config.load`` from the resolved Compose document, never read from files here and never
changed after it is built. Durations are seconds (float), sizes are bytes (int). Vocabularies are closed and
spelled as Compose spells them. ``spec`` fields keep the resolved Compose mapping (long syntax) for what only
a runtime or ``unistack config`` needs (image, build, networks, ...).

The classes are msgspec Structs (frozen, unknown fields refused): a Struct is checked against its types when it
is decoded (``from_json``, ``from_data``, ``convert``), not when it is built, so ``config.build`` checks what it
builds itself and reports it with file and line. The CLI sends the project to the daemon as JSON (``to_json``)
and the daemon decodes it with every type checked again. msgspec instead of pydantic: the same typed, checked
model for a tenth of the start-up cost (pydantic's import and schema building took 0.2 s in the CLI and again
in the daemon, both on the path of every ``up``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Struct, field

Condition = Literal["service_started", "service_healthy", "service_completed_successfully"]
RestartMode = Literal["no", "always", "on-failure", "unless-stopped"]
HealthKind = Literal["CMD", "CMD-SHELL"]


NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Model(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Immutable, compared by value, unknown fields refused when decoded."""


class Dependency(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry of a service's ``depends_on`` (long syntax)."""

    condition: Condition = "service_started"
    required: bool = True
    restart: bool = False


class Healthcheck(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An enabled healthcheck (``test: NONE`` or ``disable: true`` is represented as no Healthcheck)."""

    kind: HealthKind
    test: tuple[str, ...]  # CMD: argv; CMD-SHELL: one shell command string
    interval: float = 30.0
    timeout: float = 30.0
    retries: NonNegative = 3
    start_period: float = 0.0
    start_interval: float = 5.0


class RestartPolicy(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``restart`` (or ``deploy.restart_policy``) merged with ``x-unistack.restart``.

    ``max_attempts`` None means unlimited. Backoff: the first restart is immediate, then ``backoff_initial``
    doubling up to ``backoff_max``; the attempt count resets after the service ran ``reset_after`` seconds.
    """

    mode: RestartMode = "no"
    max_attempts: NonNegative | None = None
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    reset_after: float = 60.0


class Port(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A published port: where the service is reachable from the host."""

    host_ip: str = ""
    published: int | None = None
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"


class ProcessSpec(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``x-unistack.process``: how to run the service as a host process."""

    command: tuple[str, ...]  # argv; a string command is stored as ("/bin/sh", "-c", string)
    setup: tuple[str, ...] = ()  # run to completion before the first start of each ``up`` (installs, builds)
    working_dir: Path
    environment: dict[str, str] = field(default_factory=dict)


class Manifest(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One file of ``x-unistack.dependencies.manifests``: where it is on the host and, for containers, where the
    container keeps its copy (the file is copied there before the install runs inside)."""

    path: Path  # absolute, on the host
    target: str | None = None  # absolute, in the container


class DependencySpec(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``x-unistack.dependencies`` (development): the files a service's dependencies are declared in, and how to
    install them into the running service when one of them changes; the service is restarted once the install
    succeeded, and keeps running as it was when it failed.

    Host processes run ``x-unistack.process.setup`` again (an installer that does only what changed), or
    ``install`` in the working folder when there is no setup step; containers get the changed files copied to
    their ``target`` and ``install`` run inside the running container, as its user, in its working folder."""

    manifests: tuple[Manifest, ...]
    install: tuple[str, ...] = ()  # argv; a string is stored as ("/bin/sh", "-c", string)
    timeout: float = 600.0  # seconds an install may take before it is stopped (and counts as failed)


BackupKind = Literal["postgres", "volume", "command"]


class BackupPart(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry of a service's ``x-unistack.backup``: what ``unistack backup`` saves of it and ``restore`` puts
    back. ``postgres``: a dump with the server's own tools (``database`` and ``user`` default, when None, to the
    service's POSTGRES_DB and POSTGRES_USER as the official image reads them); ``volume``: the files of a named
    volume the service mounts; ``command``: ``dump`` writes the data to stdout, ``restore`` reads it on stdin, both
    run where the service runs."""

    kind: BackupKind
    volume: str | None = None
    database: str | None = None
    user: str | None = None
    dump: tuple[str, ...] = ()
    restore: tuple[str, ...] = ()


class Service(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: RestartPolicy = field(default_factory=lambda: RestartPolicy())
    stop_signal: str = "SIGTERM"
    stop_grace_period: float = 10.0
    environment: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    profiles: tuple[str, ...] = ()
    process: ProcessSpec | None = None
    dependencies: DependencySpec | None = None  # x-unistack.dependencies
    backup: tuple[BackupPart, ...] = ()  # x-unistack.backup
    spec: dict[str, Any] = field(default_factory=dict)  # the resolved Compose service mapping


class Notifier(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry of top-level ``x-unistack.notify``: exactly one of command or webhook."""

    command: tuple[str, ...] | None = None
    webhook: str | None = None
    timeout: float = 10.0


CheckKind = Literal["http", "websocket", "command", "assets", "browser"]


class HttpStep(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One request of an ``http`` check and what its answer must show. ``{name}`` in ``path`` is a value an
    earlier step saved (``save: {name: dotted.json.path}``); an ``always`` step runs even after a failure (the
    clean-up of a write round trip)."""

    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    origin: str | None = None  # sent as the Origin header
    body: Any = None  # sent as JSON (``json:`` in the file)
    expect_status: tuple[int, ...] = ()  # empty: any status below 400
    expect_header: dict[str, str] = field(default_factory=dict)  # name -> substring, or /regex/
    expect_no_header: tuple[str, ...] = ()
    expect_json: dict[str, Any] = field(default_factory=dict)  # dotted.path -> value
    expect_env: dict[str, str] = field(default_factory=dict)  # dotted.path -> variable of the component's env
    save: dict[str, str] = field(default_factory=dict)
    always: bool = False


class DeclaredCheck(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry of top-level ``x-unistack.validate``: a check ``unistack validate`` runs against the instance.

    ``service`` is the entry service whose published port the requests go to (default: the one service that
    publishes a TCP port), or for ``command`` the service whose container (or environment) runs it."""

    name: str
    component: str
    kind: CheckKind
    service: str | None = None
    write: bool = False  # changes data: skipped in production unless ``validate --write``
    timeout: float | None = None
    http: tuple[HttpStep, ...] = ()
    path: str = "/"  # websocket, assets, browser
    command: tuple[str, ...] = ()
    max_age: int = 86400  # assets: the least Cache-Control max-age of a hashed asset (or immutable)
    encoding: str | None = "gzip"  # assets: asked for with Accept-Encoding, expected in Content-Encoding
    selector: str | None = None  # browser: an element the page must render
    text: str | None = None  # browser: a regex the element's text must match


class Project(Model, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    environment: str  # the environment name (local, staging, production, ...)
    working_dir: Path  # the folder of the first compose file
    files: tuple[Path, ...]
    state_dir: Path  # this instance's state folder (.unistack/<project>/)
    services: dict[str, Service]
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    notify: tuple[Notifier, ...] = ()
    validate: tuple[DeclaredCheck, ...] = ()  # top-level x-unistack.validate
    variables: dict[str, str] = field(default_factory=dict)  # the interpolation environment (for redaction)
    spec: dict[str, Any] = field(default_factory=dict)  # the whole resolved Compose document

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"


_M = TypeVar("_M", bound=Model)


def _encode(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _decode(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    # a TypeError becomes msgspec's ValidationError, with where the value was
    raise TypeError(f"expected a {kind.__name__.lower()} as a string, got {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_encode)


def to_json(value: Model) -> bytes:
    return _ENCODER.encode(value)


def to_data(value: Model) -> dict[str, Any]:
    """Plain JSON-ready data (paths as strings), every field included."""
    data: dict[str, Any] = msgspec.to_builtins(value, enc_hook=_encode)
    return data


def project_from_json(text: str | bytes) -> Project:
    """Decode and check; a ``ValueError`` (msgspec.ValidationError) says what is wrong and where."""
    return msgspec.json.decode(text, type=Project, dec_hook=_decode)


def from_data(data: Any, kind: type[_M]) -> _M:
    """Check plain data (a decoded JSON document, a mapping from the files) against ``kind``; a ``ValueError``
    (msgspec.ValidationError) says what is wrong and where."""
    return msgspec.convert(data, kind, dec_hook=_decode)


def check(project: Project) -> str | None:
    """What is wrong with a built project's types (the builder checks the Compose keys it reads; this catches
    what it let through, as the daemon's decoding would), or None."""
    try:
        project_from_json(to_json(project))
    except ValueError as exc:
        return str(exc)
    return None


def replace(value: _M, **changes: Any) -> _M:
    """A copy of ``value`` with some fields changed (the model is immutable)."""
    return msgspec.structs.replace(value, **changes)
