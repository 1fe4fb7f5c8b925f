"""docs/commands.md is what the CLI says of itself (regenerate: .venv/bin/python -m unistack.reference)."""

from __future__ import annotations

from pathlib import Path

import click

from unistack.cli import cli
from unistack.reference import markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


def test_the_command_reference_is_current() -> None:
    assert DOC.read_text() == markdown(cli), (
        "docs/commands.md is out of date: run `.venv/bin/python -m unistack.reference > docs/commands.md`"
    )


def test_every_verb_has_a_section_and_a_help_text() -> None:
    ctx = click.Context(cli, info_name="unistack")
    text = markdown(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and (command.help or "").strip(), f"{name} has no help text"
        assert f"\n## {name}\n" in text
