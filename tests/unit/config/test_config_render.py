"""``unistack config`` output: long syntax, secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from unistack.config import load, render
from unistack.config.yamlfile import parse_yaml

Write = Callable[..., Path]  # the `write` fixture (conftest.py)


def test_render_redacts_secrets_everywhere(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          db:
            image: postgres
            environment:
              POSTGRES_PASSWORD: ${DB_PASSWORD}
              api_key: abcd1234
              PLAIN: visible
            ports: ["127.0.0.1:5432:5432"]
          web:
            image: web
            environment:
              DATABASE_URL: postgresql://app:${DB_PASSWORD}@db/app
            x-unistack:
              process:
                command: [serve, --key, abcd1234]
        """,
    )
    project = load(cwd=tmp_path, env={"DB_PASSWORD": "s3cret-pw"})
    for text in (render(project, "yaml"), render(project, "json")):
        assert "s3cret-pw" not in text
        assert "abcd1234" not in text
        assert "visible" in text
    document = json.loads(render(project, "json"))
    assert list(document)[:2] == ["name", "services"]
    db = document["services"]["db"]
    assert db["environment"]["POSTGRES_PASSWORD"] == "********"
    assert db["ports"] == [{"target": 5432, "published": 5432, "host_ip": "127.0.0.1", "protocol": "tcp"}]
    assert document["services"]["web"]["environment"]["DATABASE_URL"] == "postgresql://app:********@db/app"
    assert document["services"]["web"]["x-unistack"]["process"]["command"] == ["serve", "--key", "********"]
    assert parse_yaml(render(project, "yaml")).data == document
