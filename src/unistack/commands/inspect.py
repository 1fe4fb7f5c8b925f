"""The verbs that look: ``ps``, ``logs`` and ``config``. They change nothing."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

import click

from unistack import config
from unistack.commands.options import Options, check_services, create_runtime, pass_options
from unistack.config import loadcache
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.engine.states import rows_to_builtins
from unistack.errors import UnistackError, UsageError
from unistack.printer import Printer, ps_table

if TYPE_CHECKING:
    from unistack.config.model import Project


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--target", type=click.Choice(["swarm"]), help="The deployment on a swarm (tasks per node).")
@click.argument("services", nargs=-1)
@pass_options
def ps(opts: Options, fmt: str, target: str | None, services: tuple[str, ...]) -> None:
    """List the services with state, health, restarts and the last health check."""
    if target is not None:
        from unistack.commands.deploy import swarm_ps

        return swarm_ps(opts, fmt)
    project = opts.project(saved_ok=True)  # the files may no longer load
    selected = check_services(project, services)
    client = daemon_client.existing(project.state_dir)
    rows = client.ps(selected) if client is not None else []
    click.echo(json.dumps(rows_to_builtins(rows), indent=2) if fmt == "json" else ps_table(rows))


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (across restarts).")
@click.option("-n", "--tail", default="all", metavar="N", help="Lines from the end of each log (or 'all').")
@click.option("--target", type=click.Choice(["swarm"]), help="The deployment on a swarm (every node's tasks).")
@click.argument("services", nargs=-1)
@pass_options
def logs(opts: Options, follow: bool, tail: str, target: str | None, services: tuple[str, ...]) -> None:
    """Print the services' output."""
    project = opts.project(saved_ok=True)  # the files may no longer load
    names = check_services(project, services) or list(project.services)
    if tail != "all" and not tail.isdigit():
        raise UsageError(f"--tail takes a number of lines or 'all', not {tail!r}")
    count = None if tail == "all" else int(tail)
    if target is not None:
        from unistack.commands.deploy import swarm_logs

        return swarm_logs(opts, count, names)
    printer = Printer(names)
    if not follow and count is not None and (lines := _logs_from_daemon(opts, project, names, count)) is not None:
        for service, text in lines:
            printer.log(service, text)
        return
    runtime = create_runtime(opts.runtime_name())
    import asyncio

    from unistack.follow import print_logs

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(print_logs(runtime.logs(project, names, count, follow), printer))


def _logs_from_daemon(opts: Options, project: Project, names: list[str], count: int) -> list[tuple[str, str]] | None:
    """``logs --tail N`` read by the instance's daemon (it has the runtime's driver loaded: for containers, the
    Docker SDK, ~0.1 s to import), the same lines as read here; None when no daemon runs it on this runtime."""
    if not state.daemon_alive(project.state_dir):
        return None
    with contextlib.suppress(UnistackError):  # not answering, older code, another runtime: read them here
        return daemon_client.DaemonClient(project.state_dir).logs(opts.runtime_name(), names, count)
    return None


@click.command("config")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--no-redact", is_flag=True, help="Print secret values as they are (for piping into other tools).")
@pass_options
def config_command(opts: Options, fmt: str, no_redact: bool) -> None:
    """Print the resolved configuration, a Compose file that reads back to the same project (secrets redacted)."""
    text = config.render(opts.project(), "json" if fmt == "json" else "yaml", redacted=not no_redact)
    loadcache.remember_output(f"config {fmt}{' --no-redact' if no_redact else ''}", text)
    click.echo(text, nl=False)
