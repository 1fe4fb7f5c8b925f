"""The command reference (``docs/commands.md``), generated from the click group itself so it cannot drift.

Owns turning the CLI's commands, arguments, options and help texts into Markdown. Never runs a command.
Regenerate with ``.venv/bin/python -m unistack.reference > docs/commands.md``; a test fails when the file is
not what this prints.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

HEADER = """# Commands

Generated from the CLI by `.venv/bin/python -m unistack.reference > docs/commands.md`; a test fails when this
file and the CLI disagree. `unistack COMMAND --help` prints the same.

Exit codes: 0 ok; 1 a service or a check failed (for `env diff`: the environments differ); 2 bad usage or bad
configuration (the file, line and key named, nothing started).
"""


def markdown(group: click.Group) -> str:
    lines = [HEADER]
    root = click.Context(group, info_name="unistack")
    lines.append("## Global options\n")
    lines.append("```")
    lines.append(_usage(group, root))
    lines.append("```\n")
    lines.extend(_options(group, root))
    for path, command, ctx in _walk(group, root, ()):
        lines.append(f"## {' '.join(path)}\n")
        lines.append(_help(command))
        lines.append("")
        lines.append("```")
        lines.append(_usage(command, ctx))
        lines.append("```\n")
        lines.extend(_options(command, ctx))
    return "\n".join(lines).rstrip() + "\n"


def _walk(
    group: click.Group, parent: click.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    for name in sorted(group.list_commands(parent)):
        command = group.get_command(parent, name)
        if command is None or command.hidden:
            continue
        ctx = click.Context(command, info_name=name, parent=parent)
        if isinstance(command, click.Group):
            yield (*path, name), command, ctx
            yield from _walk(command, ctx, (*path, name))
        else:
            yield (*path, name), command, ctx


def _help(command: click.Command) -> str:
    text = (command.help or command.short_help or "").strip()
    return click.unstyle(text.split("\f")[0].strip())


def _usage(command: click.Command, ctx: click.Context) -> str:
    pieces = command.collect_usage_pieces(ctx)
    return f"{ctx.command_path} {' '.join(pieces)}".rstrip()


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    rows: list[str] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or isinstance(param, click.Argument) or "--help" in param.opts:
            continue
        names, text = (cell.replace("|", "\\|") for cell in record)  # a bare | would end the table's cell
        rows.append(f"| `{names}` | {text} |")
    if not rows:
        return []
    return ["| option | meaning |", "|---|---|", *rows, ""]


def main() -> None:
    from unistack.cli import cli

    click.echo(markdown(cli), nl=False)


if __name__ == "__main__":
    main()
