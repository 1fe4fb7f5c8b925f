"""``x-unistack.backup``: the parts a service declares, and every mistake reported with its line and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from unistack import config
from unistack.config.model import BackupPart
from unistack.errors import ConfigError

Write = Callable[..., Path]


def test_parts_of_each_kind(write: Write) -> None:
    path = write(
        "compose.yaml",
        """
        services:
          db:
            image: postgres
            x-unistack:
              backup: [postgres]
          app:
            image: app
            volumes: [files:/files]
            x-unistack:
              backup:
                - volume: files
                - {dump: "cat /files/db.sqlite", restore: ["sh", "-c", "cat > /files/db.sqlite"]}
                - postgres: {database: other, user: me}
        volumes:
          files: {}
        """,
    )
    project = config.load([str(path)])
    assert project.services["db"].backup == (BackupPart(kind="postgres"),)
    assert project.services["app"].backup == (
        BackupPart(kind="volume", volume="files"),
        BackupPart(
            kind="command",
            dump=("/bin/sh", "-c", "cat /files/db.sqlite"),
            restore=("sh", "-c", "cat > /files/db.sqlite"),
        ),
        BackupPart(kind="postgres", database="other", user="me"),
    )


def test_every_mistake_with_its_line(write: Write) -> None:
    path = write(
        "compose.yaml",
        """
        services:
          a:
            image: x
            volumes: [data:/d]
            x-unistack:
              backup:
                - volume: nope
                - volume: spare
                - postgres: {dbname: x}
                - dump: ["cat"]
                - volume: data
                  postgres: {}
        volumes:
          data: {}
          spare: {}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        config.load([str(path)])
    lines = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in lines] == [7, 8, 9, 10, 11]
    text = str(caught.value)
    assert "which the top-level volumes do not declare" in text
    assert "backs up volume 'spare' but does not mount it" in text
    assert "unknown postgres option 'dbname'" in text
    assert "restore command is missing" in text
    assert "exactly one of postgres, volume, or dump/restore (found postgres and volume)" in text
