"""The command line: Compose's verbs and flags. The only module that prints errors and exits.

Each command loads the project (config), checks what the chosen runtime needs, and then either talks to the
instance's daemon (control.client) or reads what it needs directly (logs). Exit codes: 0 ok, 1 a service or
check failed, 2 bad usage or bad configuration.

Startup time is part of ``up``'s latency, so heavy modules (asyncio, the runtimes, msgspec through the model)
are imported where they are used, and for ``up`` the entry point starts a daemon's interpreter before this
module is even imported (``unistack.entry``); it learns its instance when told to go.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from unistack import __version__, config
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.errors import ConfigError, UnistackError, UsageError
from unistack.printer import Printer, columns, ps_table, wait_report
from unistack.runtimes import RUNTIME_CHOICES

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.runtimes.base import Runtime


@dataclass
class Options:
    files: tuple[str, ...]
    project_name: str | None
    env_name: str | None
    env_files: tuple[str, ...]
    profiles: tuple[str, ...]
    runtime: str
    _project: Project | None = field(default=None, repr=False)
    _runtime_name: str | None = field(default=None, repr=False)

    def project(self, on_state_dir: Callable[[Path], None] | None = None) -> Project:
        if self._project is None:
            files: Sequence[str] | None = self.files or None
            default_dir = os.environ.get("UNISTACK_DEFAULT_DIR")
            cwd = None
            if files is None and default_dir and not _compose_file_above(Path.cwd()):
                cwd = Path(default_dir)
            collecting = gc.isenabled()
            gc.disable()  # a load makes many objects and little cyclic garbage: ~10 % of its time went to the GC
            try:
                self._project = config.load(
                    files,
                    project_name=self.project_name,
                    env_name=self.env_name,
                    env_files=self.env_files or None,
                    profiles=self.profiles,
                    cwd=cwd,
                    on_state_dir=on_state_dir,
                )
            finally:
                if collecting:
                    gc.enable()
        return self._project

    def runtime_name(self) -> str:
        """The runtime asked for; with ``auto``, the one this instance already runs on, else docker when an
        engine answers, else process."""
        if self._runtime_name is None:
            recorded = None
            if self.runtime == "auto":
                recorded = (state.read_state(self.project().state_dir) or {}).get("runtime")
            if self.runtime == "process":  # nothing to detect: no need to import the runtimes (and asyncio)
                return "process"
            from unistack.runtimes import resolve_runtime_name

            self._runtime_name = resolve_runtime_name(self.runtime, recorded)
        return self._runtime_name

    def checked_project(self, on_state_dir: Callable[[Path], None] | None = None) -> Project:
        """The project, with what the chosen runtime needs checked before anything starts."""
        project = self.project(on_state_dir)
        if self.runtime_name() == "process" and (problems := config.check_for_process_runtime(project)):
            raise ConfigError(problems)
        if self.runtime_name() == "docker":
            from unistack.runtimes.docker.spec import check_for_docker_runtime

            if problems := check_for_docker_runtime(project):
                raise ConfigError(problems)
        return project


def _compose_file_above(folder: Path) -> bool:
    names = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
    return any((d / n).is_file() for d in (folder, *folder.parents) for n in names)


def _check_services(project: Project, services: Sequence[str]) -> list[str]:
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise UsageError(
            f"no such service: {', '.join(unknown)}; the project {project.name!r} has: {', '.join(project.services)}"
        )
    return list(services)


pass_options = click.make_pass_decorator(Options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, metavar="FILE", help="Compose file (repeat to overlay).")
@click.option("-p", "--project-name", metavar="NAME", help="Project (instance) name.")
@click.option("--env", "env_name", envvar="UNISTACK_ENV", metavar="NAME", help="Environment (default: local).")
@click.option("--env-file", "env_files", multiple=True, metavar="PATH", help="Variables file instead of .env.")
@click.option("--profile", "profiles", multiple=True, metavar="NAME", help="Enable a profile.")
@click.option(
    "--runtime",
    envvar="UNISTACK_RUNTIME",
    default="auto",
    show_default=True,
    type=click.Choice(RUNTIME_CHOICES),
    help="Where services run.",
)
@click.version_option(__version__, prog_name="unistack")
@click.pass_context
def cli(
    ctx: click.Context,
    files: tuple[str, ...],
    project_name: str | None,
    env_name: str | None,
    env_files: tuple[str, ...],
    profiles: tuple[str, ...],
    runtime: str,
) -> None:
    """Run a whole application stack from one Compose file."""
    ctx.obj = Options(files, project_name, env_name, env_files, profiles, runtime)


# --------------------------------------------------------------------------- up


@cli.command()
@click.option("-d", "--detach", is_flag=True, help="Return once the supervisor owns the stack.")
@click.option("--wait", is_flag=True, help="Wait until services are running or healthy (implies -d).")
@click.option("--wait-timeout", type=float, metavar="S", help="Give up waiting after S seconds.")
@click.argument("services", nargs=-1)
@pass_options
def up(opts: Options, detach: bool, wait: bool, wait_timeout: float | None, services: tuple[str, ...]) -> None:
    """Create and start the services (and what they depend on)."""
    daemon_client.prestart()  # begun already by the entry point, unless ``main`` was called directly
    project = opts.checked_project(on_state_dir=daemon_client.standby_for)
    selected = _check_services(project, services)
    runtime_name = opts.runtime_name()
    printer = Printer(list(project.services))
    if wait or detach:
        with state.instance_lock(project.state_dir, on_wait=lambda: _waiting_for_lock(printer)):
            done = _send_up(project, selected, runtime_name)
        for name, what in done.items():
            printer.say(f"{name}: {what}")
        if not wait:
            printer.say(f"{project.name}: the supervisor owns the stack; see `unistack ps` and `unistack logs -f`")
            _say_addresses(printer, project, selected)
            return
        result = daemon_client.ensure(project.state_dir).call("wait", services=selected, timeout=wait_timeout)
        printer.say(wait_report(result))
        if not result["ok"]:
            raise _Exit(1)
        _say_addresses(printer, project, selected)
        return
    import asyncio

    from unistack import follow

    def start() -> None:  # in a thread, while the terminal already follows the logs and events
        with state.instance_lock(project.state_dir, on_wait=lambda: _waiting_for_lock(printer)):
            _send_up(project, selected, runtime_name)

    def started() -> None:
        printer.say(f"{project.name}: started; press Ctrl+C to stop")
        _say_addresses(printer, project, selected)

    runtime = _create_runtime(runtime_name)
    raise _Exit(asyncio.run(follow.foreground(project, selected, runtime, printer, start, started)))


def _say_addresses(printer: Printer, project: Project, selected: list[str]) -> None:
    """Where the stack is reachable: every published TCP port of the selected services."""
    for name in selected or list(project.services):
        for port in project.services[name].ports:
            if port.published is not None and port.protocol == "tcp":
                host = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
                host = f"[{host}]" if ":" in host else host
                printer.say(f"{name} is reachable at http://{host}:{port.published}")


def _waiting_for_lock(printer: Printer) -> None:
    printer.say("another unistack command is changing this instance; waiting for it to finish")


def _send_up(project: Project, selected: list[str], runtime_name: str) -> dict[str, str]:
    client = daemon_client.ensure(project.state_dir)
    result: dict[str, str] = client.call(
        "up",
        project_json=_project_json(project),  # the daemon checks it as it decodes it, and saves the text
        services=selected,
        environ=dict(os.environ),
        runtime=runtime_name,
    )
    return result


def _project_json(project: Project) -> str:
    from unistack.config.model import to_json

    return to_json(project).decode()


def _create_runtime(name: str) -> Runtime:
    from unistack.runtimes import create_runtime

    return create_runtime(name)


# --------------------------------------------------------------------------- down, start, stop, restart


@cli.command()
@click.option("-v", "--volumes", is_flag=True, help="Also remove the data in named volumes.")
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@pass_options
def down(opts: Options, volumes: bool, timeout: float | None) -> None:
    """Stop the services and remove what the instance made (its data too with -v)."""
    project = opts.project()
    printer = Printer(list(project.services))
    with state.instance_lock(project.state_dir, on_wait=lambda: _waiting_for_lock(printer)):
        client = daemon_client.existing(project.state_dir)
        if client is not None:
            client.call("down", volumes=volumes, timeout=timeout)
            deadline = time.monotonic() + 10
            while state.daemon_alive(project.state_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
        elif volumes:
            import asyncio

            asyncio.run(_create_runtime(opts.runtime_name()).cleanup(project, remove_volumes=True))
    printer.say(f"{project.name}: stopped" + ("; volumes removed" if volumes else ""))


def _change(opts: Options, cmd: str, services: tuple[str, ...], timeout: float | None = None) -> None:
    project = opts.project()
    selected = _check_services(project, services)
    printer = Printer(list(project.services))
    with state.instance_lock(project.state_dir, on_wait=lambda: _waiting_for_lock(printer)):
        client = daemon_client.existing(project.state_dir)
        if client is None:
            if cmd == "stop":
                printer.say(f"{project.name} is not up; nothing to stop")
                return
            raise UsageError(f"{project.name} is not up; run `unistack up` first")
        rows = client.call(cmd, services=selected, timeout=timeout)
    printer.say(ps_table(r for r in rows if not selected or r["service"] in selected))


@cli.command()
@click.argument("services", nargs=-1)
@pass_options
def start(opts: Options, services: tuple[str, ...]) -> None:
    """Start stopped services of an instance that is up."""
    _change(opts, "start", services)


@cli.command()
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@click.argument("services", nargs=-1)
@pass_options
def stop(opts: Options, timeout: float | None, services: tuple[str, ...]) -> None:
    """Stop services (all when none is named), dependents first."""
    _change(opts, "stop", services, timeout)


@cli.command()
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@click.argument("services", nargs=-1)
@pass_options
def restart(opts: Options, timeout: float | None, services: tuple[str, ...]) -> None:
    """Restart services (all when none is named)."""
    _change(opts, "restart", services, timeout)


# --------------------------------------------------------------------------- ps, logs, config


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.argument("services", nargs=-1)
@pass_options
def ps(opts: Options, fmt: str, services: tuple[str, ...]) -> None:
    """List the services with state, health, restarts and the last health check."""
    project = opts.project()
    selected = _check_services(project, services)
    client = daemon_client.existing(project.state_dir)
    rows = client.call("ps") if client is not None else []
    rows = [r for r in rows if not selected or r["service"] in selected]
    click.echo(json.dumps(rows, indent=2) if fmt == "json" else ps_table(rows))


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (across restarts).")
@click.option("-n", "--tail", default="all", metavar="N", help="Lines from the end of each log (or 'all').")
@click.argument("services", nargs=-1)
@pass_options
def logs(opts: Options, follow: bool, tail: str, services: tuple[str, ...]) -> None:
    """Print the services' output."""
    project = opts.project()
    names = _check_services(project, services) or list(project.services)
    if tail != "all" and not tail.isdigit():
        raise UsageError(f"--tail takes a number of lines or 'all', not {tail!r}")
    count = None if tail == "all" else int(tail)
    printer = Printer(names)
    runtime = _create_runtime(opts.runtime_name())
    import asyncio

    from unistack.follow import print_logs

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(print_logs(runtime.logs(project, names, count, follow), printer))


@cli.command("config")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@pass_options
def config_command(opts: Options, fmt: str) -> None:
    """Print the resolved configuration (secrets redacted)."""
    click.echo(config.render(opts.project(), "json" if fmt == "json" else "yaml"), nl=False)


# --------------------------------------------------------------------------- images (the Docker runtime)


@cli.command()
@click.option("--no-cache", is_flag=True, help="Build every step again (Docker's layer cache unused).")
@click.option("--bootstrap", is_flag=True, help="Make a missing base image offline (debootstrap).")
@click.argument("services", nargs=-1)
@pass_options
def build(opts: Options, no_cache: bool, bootstrap: bool, services: tuple[str, ...]) -> None:
    """Build the services' images (only those whose build context changed)."""
    from unistack.runtimes.docker import images
    from unistack.runtimes.docker.engine import client as docker_client

    project = opts.project()
    selected = _check_services(project, services)
    plans = images.plans(project, selected or None)
    if not plans:
        click.echo(f"{project.name}: no service has a build section; nothing to build")
        return
    client = docker_client(timeout=600)
    results = []
    for plan in plans:
        tag = click.style(plan.image, fg="cyan", bold=True)
        click.echo(f"{tag}: checking {plan.context}")
        results.append(
            images.build(
                client,
                plan,
                lambda line, tag=tag: click.echo(f"{tag} | {line}"),  # type: ignore[misc]
                no_cache=no_cache,
                bootstrap=bootstrap,
            )
        )
    rows = [("IMAGE", "SERVICES", "RESULT", "TIME", "SIZE")]
    for r in results:
        what = "built" if r.built else "up to date"
        rows.append((r.image, ",".join(r.services), what, f"{r.seconds:.1f}s", images.human_size(r.size)))
    click.echo(columns(rows))


@cli.group("images")
def images_group() -> None:
    """The base image and the project's images (the Docker runtime)."""


@images_group.command("bootstrap")
@click.option("--base", default="debian:bookworm-slim", show_default=True, help="Name to give the image.")
@click.option("--suite", default="bookworm", show_default=True, help="Debian release to install.")
@click.option("--mirror", envvar="UNISTACK_DEBIAN_MIRROR", metavar="URL", help="Debian mirror (deb.debian.org).")
@click.option("--force", is_flag=True, help="Make it again even if an image of that name exists.")
def images_bootstrap(base: str, suite: str, mirror: str | None, force: bool) -> None:
    """Make the base image offline: debootstrap a minimal Debian and `docker import` it."""
    from unistack.runtimes.docker import base_image, images
    from unistack.runtimes.docker.engine import client as docker_client

    client = docker_client(timeout=600)
    if not force and images.image_exists(client, base):
        click.echo(f"{base} is already here (use --force to make it again)")
        return
    result = base_image.bootstrap_base(
        client, base, suite=suite, mirror=mirror, emit=lambda line: click.echo(f"  {line}")
    )
    click.echo(f"{base}: made in {result.seconds:.0f} s ({images.human_size(result.size)})")


# --------------------------------------------------------------------------- watch (develop.watch)


@cli.command("watch")
@click.argument("services", nargs=-1)
@pass_options
def watch_command(opts: Options, services: tuple[str, ...]) -> None:
    """Sync files into running containers, restart or rebuild them as files change (develop.watch)."""
    from unistack import watch

    project = opts.project()
    selected = _check_services(project, services)
    recorded = (state.read_state(project.state_dir) or {}).get("runtime")  # what the instance runs on
    watch.run(project, selected, recorded or opts.runtime_name(), Printer(list(project.services)).say)


# --------------------------------------------------------------------------- entry point


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        _main(argv)
    finally:
        daemon_client.discard_standby()  # an up that did not need the daemon it started ahead
        if argv is None:  # the process ends here (not a test calling main): its last collections would walk
            gc.freeze()  # every object left (the project, the modules), a good part of every command's exit


def _main(argv: Sequence[str] | None) -> NoReturn:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="unistack", standalone_mode=False)
    except _Exit as done:
        sys.exit(done.code)
    except ConfigError as exc:
        click.echo("error: the configuration is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(exc.exit_code)
    except UnistackError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
