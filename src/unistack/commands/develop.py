"""The development verb: ``watch`` (``develop.watch``: sync, rebuild, sync+restart)."""

from __future__ import annotations

import click

from unistack.commands.options import Options, check_services, pass_options
from unistack.control import state
from unistack.printer import Printer


@click.command("watch")
@click.argument("services", nargs=-1)
@pass_options
def watch_command(opts: Options, services: tuple[str, ...]) -> None:
    """Sync files into running containers, restart or rebuild them as files change (develop.watch)."""
    from unistack import watch

    project = opts.project()
    selected = check_services(project, services)
    recorded = (state.read_state(project.state_dir) or {}).get("runtime")  # what the instance runs on
    watch.run(project, selected, recorded or opts.runtime_name(), Printer(list(project.services)).say)
