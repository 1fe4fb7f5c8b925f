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


def test_a_secret_equal_to_a_word_of_another_value_leaves_that_value_alone(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          gitea:
            image: gitea/gitea:1.21
            environment:
              POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
              GITEA__database__USER: gitea
              DATABASE_URL: postgres://gitea:${POSTGRES_PASSWORD}@db/gitea
            command: [gitea, web, --password, "${POSTGRES_PASSWORD}"]
            healthcheck:
              test: ["CMD-SHELL", "PGPASSWORD=${POSTGRES_PASSWORD} psql -U gitea -c 'select 1'"]
        """,
    )
    project = load(cwd=tmp_path, env={"POSTGRES_PASSWORD": "gitea"})
    service = json.loads(render(project, "json"))["services"]["gitea"]
    assert service["image"] == "gitea/gitea:1.21"
    assert service["environment"] == {
        "POSTGRES_PASSWORD": "********",
        "GITEA__database__USER": "gitea",  # not a secret's key: the same word stays
        "DATABASE_URL": "postgres://gitea:********@db/gitea",
    }
    assert service["command"] == ["gitea", "web", "--password", "********"]  # an argument that is the secret
    assert service["healthcheck"]["test"][1] == "PGPASSWORD=******** psql -U gitea -c 'select 1'"


def test_what_a_secret_reads_is_hidden_and_no_redact_shows_everything(write: Write, tmp_path: Path) -> None:
    write(
        "compose.yaml",
        """
        services:
          app:
            image: app
            secrets: [api]
            configs: [settings]
            command: [app, --token, "${API_VALUE}"]
            environment: {PRICE: "5$$", API_KEY: k-123456}
        secrets:
          api: {environment: API_VALUE}
        configs:
          settings: {content: "url = https://app:hunter22@example.com/"}
        """,
    )
    project = load(cwd=tmp_path, env={"API_VALUE": "v-98765432"})
    redacted = render(project, "yaml")
    assert "v-98765432" not in redacted and "hunter22" not in redacted and "k-123456" not in redacted
    document = parse_yaml(redacted).data
    assert document["secrets"] == {"api": {"environment": "API_VALUE"}}  # the variable's name, never its value
    assert document["configs"]["settings"]["content"] == "url = https://app:********@example.com/"
    shown = json.loads(render(project, "json", redacted=False))
    assert shown["services"]["app"]["command"] == ["app", "--token", "v-98765432"]
    assert shown["configs"]["settings"]["content"] == "url = https://app:hunter22@example.com/"
    assert shown["services"]["app"]["environment"] == {"PRICE": "5$$", "API_KEY": "k-123456"}  # $ written $$
