"""The command line: the group and its global options, the verbs registered (``commands/``), and every error
turned into a message and an exit code. The only module that prints errors and exits.

Exit codes: 0 ok, 1 a service or check failed, 2 bad usage or bad configuration.

Startup time is part of ``up``'s latency, so heavy modules (asyncio, the runtimes, msgspec through the model)
are imported where they are used, and for ``up`` the entry point starts a daemon's interpreter before this
module is even imported (``unistack.entry``); it learns its instance when told to go.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from unistack import __version__
from unistack.commands.options import Exit, Options
from unistack.control import client as daemon_client
from unistack.errors import ConfigError, UnistackError
from unistack.runtimes import RUNTIME_CHOICES

# verb -> (module under unistack.commands, attribute): a verb's module is imported only when that verb runs (or
# for --help), so `ps` does not pay for validate's asyncio or lifecycle's port settling
VERBS = {
    "up": ("lifecycle", "up"),
    "down": ("lifecycle", "down"),
    "start": ("lifecycle", "start"),
    "stop": ("lifecycle", "stop"),
    "restart": ("lifecycle", "restart"),
    "ps": ("inspect", "ps"),
    "logs": ("inspect", "logs"),
    "config": ("inspect", "config_command"),
    "build": ("images", "build"),
    "images": ("images", "images_group"),
    "watch": ("develop", "watch_command"),
    "env": ("env", "env_group"),
    "validate": ("validate", "validate_command"),
    "backup": ("data", "backup"),
    "restore": ("data", "restore"),
    "reset": ("data", "reset"),
    "deploy": ("deploy", "deploy"),
    "undeploy": ("deploy", "undeploy"),
    "render": ("render", "render"),
    "dashboard": ("dashboard", "dashboard"),
}


class Verbs(click.Group):
    """The group whose verbs (``VERBS``) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in VERBS:
            return None
        module, attribute = VERBS[cmd_name]
        command = getattr(importlib.import_module(f"unistack.commands.{module}"), attribute)
        assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
        return command


@click.group(cls=Verbs, context_settings={"help_option_names": ["-h", "--help"]})
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
    except Exit as done:
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
