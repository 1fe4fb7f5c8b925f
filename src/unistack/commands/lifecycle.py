"""The lifecycle verbs: ``up`` (detached, waiting, or in the foreground), ``down``, ``start``, ``stop`` and
``restart``. Each loads the project, takes the instance lock and asks the instance's daemon; never supervises.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from unistack.commands.options import (
    Exit,
    Options,
    check_services,
    create_runtime,
    pass_options,
    waiting_for_lock,
)
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.engine.states import rows_from
from unistack.errors import UsageError
from unistack.ops import ports
from unistack.printer import Printer, ps_table, wait_report
from unistack.runtimes import DOCKER

if TYPE_CHECKING:
    from unistack.config.model import Project


@click.command()
@click.option("-d", "--detach", is_flag=True, help="Return once the supervisor owns the stack.")
@click.option("--wait", is_flag=True, help="Wait until services are running or healthy (implies -d).")
@click.option("--wait-timeout", type=float, metavar="S", help="Give up waiting after S seconds.")
@click.option("--validate", "then_validate", is_flag=True, help="Then run `unistack validate` (with --wait).")
@click.argument("services", nargs=-1)
@pass_options
def up(
    opts: Options,
    detach: bool,
    wait: bool,
    wait_timeout: float | None,
    then_validate: bool,
    services: tuple[str, ...],
) -> None:
    """Create and start the services (and what they depend on)."""
    if then_validate and not wait:
        raise UsageError("--validate needs --wait: `unistack up --wait --validate`")
    daemon_client.prestart()  # begun already by the entry point, unless ``main`` was called directly
    project = opts.checked_project(on_state_dir=daemon_client.standby_for)
    selected = check_services(project, services)
    runtime_name = opts.runtime_name()
    settled = _settle_ports(opts, project, selected, runtime_name)  # a taken pinned port: exit 2, nothing started
    project, notes = settled.project, ports.notes_for(settled)
    printer = Printer(list(project.services))
    if opts.runtime_reason is not None:  # --runtime auto: which one, and why
        printer.say(f"runtime: {runtime_name} ({opts.runtime_reason})")
    if runtime_name == DOCKER:  # once per up: the networks where a start-first update keeps Docker's address choice
        from unistack.runtimes.docker import beside, engine

        for warning in beside.unfixed_networks(project, lambda: engine.client(timeout=10)):
            click.echo(f"warning: {warning}", err=True)
    if wait or detach:
        with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
            done = _send_up(project, selected, runtime_name)
            ports.save(project.state_dir, settled.choices)
        for name, what in done.items():
            printer.say(f"{name}: {what}")
        if not wait:
            printer.say(f"{project.name}: the supervisor owns the stack; see `unistack ps` and `unistack logs -f`")
            _say_addresses(printer, project, selected, notes)
            return
        result = daemon_client.ensure(project.state_dir).call("wait", services=selected, timeout=wait_timeout)
        printer.say(wait_report(result))
        if not result["ok"]:
            raise Exit(1)
        _say_addresses(printer, project, selected, notes)
        if then_validate:
            from unistack.commands.validate import check_up_and_validate

            check_up_and_validate(opts, project, selected)
        return
    import asyncio

    from unistack import follow

    def start() -> None:  # in a thread, while the terminal already follows the logs and events
        with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
            _send_up(project, selected, runtime_name)
            ports.save(project.state_dir, settled.choices)

    def started() -> None:
        printer.say(f"{project.name}: started; press Ctrl+C to stop")
        _say_addresses(printer, project, selected, notes)

    runtime = create_runtime(runtime_name)
    raise Exit(asyncio.run(follow.foreground(project, selected, runtime, printer, start, started)))


def _settle_ports(opts: Options, project: Project, selected: list[str], runtime_name: str) -> ports.Settled:
    """The project with its published host ports free for this instance (see ``ops.ports``): skipped when the
    ports are another machine's (a Docker engine reached over the network)."""
    if runtime_name == DOCKER:
        from unistack.runtimes.docker.engine import is_local

        if not is_local(os.environ):
            return ports.Settled(project, [])
    return ports.settle(project, selected, opts.reload, os.environ)


def _say_addresses(
    printer: Printer, project: Project, selected: list[str], notes: Mapping[tuple[str, int], str] | None = None
) -> None:
    """Where the stack is reachable: every published TCP port of the selected services (with why, for a port
    chosen because the preferred one was taken)."""
    for name in selected or list(project.services):
        for port in project.services[name].ports:
            if port.published is not None and port.protocol == "tcp":
                host = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
                host = f"[{host}]" if ":" in host else host
                note = (notes or {}).get((name, port.published))
                printer.say(f"{name} is reachable at http://{host}:{port.published}" + (f" {note}" if note else ""))


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


@click.command()
@click.option("-v", "--volumes", is_flag=True, help="Also remove the data in named volumes.")
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@pass_options
def down(opts: Options, volumes: bool, timeout: float | None) -> None:
    """Stop the services and remove what the instance made (its data too with -v)."""
    project = opts.project(saved_ok=True)  # the files may no longer load
    printer = Printer(list(project.services))
    with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
        client = daemon_client.existing(project.state_dir)
        if client is not None:
            client.call("down", volumes=volumes, timeout=timeout)
            deadline = time.monotonic() + 10
            while state.daemon_alive(project.state_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
        elif volumes:
            import asyncio

            asyncio.run(create_runtime(opts.runtime_name()).cleanup(project, remove_volumes=True))
        ports.forget(project.state_dir)  # the next `up` takes the preferred ports again when they are free
    printer.say(f"{project.name}: stopped" + ("; volumes removed" if volumes else ""))


def _change(opts: Options, cmd: str, services: tuple[str, ...], timeout: float | None = None) -> None:
    project = opts.project(saved_ok=cmd == "stop")  # stopping needs no files
    selected = check_services(project, services)
    printer = Printer(list(project.services))
    with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
        client = daemon_client.existing(project.state_dir)
        if client is None:
            if cmd == "stop":
                printer.say(f"{project.name} is not up; nothing to stop")
                return
            raise UsageError(f"{project.name} is not up; run `unistack up` first")
        rows = rows_from(client.call(cmd, services=selected, timeout=timeout))
    printer.say(ps_table(r for r in rows if not selected or r.service in selected))


@click.command()
@click.argument("services", nargs=-1)
@pass_options
def start(opts: Options, services: tuple[str, ...]) -> None:
    """Start stopped services of an instance that is up."""
    _change(opts, "start", services)


@click.command()
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@click.argument("services", nargs=-1)
@pass_options
def stop(opts: Options, timeout: float | None, services: tuple[str, ...]) -> None:
    """Stop services (all when none is named), dependents first."""
    _change(opts, "stop", services, timeout)


@click.command()
@click.option("-t", "--timeout", type=float, metavar="S", help="Grace period instead of stop_grace_period.")
@click.argument("services", nargs=-1)
@pass_options
def restart(opts: Options, timeout: float | None, services: tuple[str, ...]) -> None:
    """Restart services (all when none is named)."""
    _change(opts, "restart", services, timeout)
