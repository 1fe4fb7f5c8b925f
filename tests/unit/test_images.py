"""The image builder's pure parts: build plans, the build context, the content hash, FROM parsing."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from unistack import config
from unistack.errors import ConfigError
from unistack.runtimes.docker import images


def _project(tmp_path: Path, text: str) -> config.model.Project:
    (tmp_path / "compose.yaml").write_text(text)
    return config.load([str(tmp_path / "compose.yaml")], env={}, project_name="demo")


def _context(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "node_modules/pkg").mkdir(parents=True)
    (app / "Dockerfile").write_text(
        "# syntax comment\nARG BASE=debian:bookworm-slim\nFROM ${BASE} AS build\nRUN true\n"
        "FROM build AS final\nFROM other/image:1 AS extra\nFROM scratch\n"
    )
    (app / ".dockerignore").write_text("# deps\nnode_modules\n*.log\n")
    (app / "src/main.py").write_text("print('hi')\n")
    (app / "debug.log").write_text("noise\n")
    (app / "node_modules/pkg/index.js").write_text("x\n")
    return app


COMPOSE = """
services:
  backend:
    build: {context: ./app, args: {BASE: "base:1"}}
    image: shared
  migrate:
    build: {context: ./app, args: {BASE: "base:1"}}
    image: shared
  web:
    build: ./app
  db:
    image: postgres
"""


def test_services_sharing_an_image_make_one_plan(tmp_path: Path) -> None:
    _context(tmp_path)
    plans = images.plans(_project(tmp_path, COMPOSE))
    assert [(p.image, p.services) for p in plans] == [("shared", ("backend", "migrate")), ("demo-web", ("web",))]
    assert plans[0].args == (("BASE", "base:1"),)
    assert plans[0].context == tmp_path / "app"


def test_services_building_one_image_differently_are_refused(tmp_path: Path) -> None:
    _context(tmp_path)
    shared = 'migrate:\n    build: {context: ./app, args: {BASE: "base:1"}}'
    text = COMPOSE.replace(shared, "migrate:\n    build: ./app")
    with pytest.raises(ConfigError) as err:
        images.plans(_project(tmp_path, text))
    assert "both name image 'shared'" in str(err.value.problems[0])


def test_dockerignore_is_honoured_and_the_dockerfile_kept(tmp_path: Path) -> None:
    _context(tmp_path)
    plan = images.plans(_project(tmp_path, COMPOSE))[0]
    files = images.context_files(plan)
    assert "src/main.py" in files and "Dockerfile" in files and ".dockerignore" in files
    assert not any(f.startswith("node_modules") or f.endswith(".log") for f in files)


def test_the_dockerfiles_own_ignore_file_comes_before_the_contexts(tmp_path: Path) -> None:
    app = _context(tmp_path)
    (app / "docker").mkdir()
    (app / "docker/web.Dockerfile").write_text("FROM scratch\n")
    (app / "docker/web.Dockerfile.dockerignore").write_text("src\n")  # node_modules and logs are kept by it
    text = COMPOSE.replace("    build: ./app\n", "    build: {context: ./app, dockerfile: docker/web.Dockerfile}\n")
    web = next(p for p in images.plans(_project(tmp_path, text)) if p.services == ("web",))
    files = images.context_files(web)
    assert "docker/web.Dockerfile" in files and "node_modules/pkg/index.js" in files and "debug.log" in files
    assert not any(f.startswith("src") for f in files)
    shared = images.plans(_project(tmp_path, text))[0]  # the default Dockerfile: the context's .dockerignore
    assert "src/main.py" in images.context_files(shared) and "debug.log" not in images.context_files(shared)


def test_from_lines_give_the_external_bases_with_args_applied(tmp_path: Path) -> None:
    _context(tmp_path)
    shared, web = images.plans(_project(tmp_path, COMPOSE))
    assert images.external_bases(shared) == ["base:1", "other/image:1"]
    assert images.external_bases(web) == ["debian:bookworm-slim", "other/image:1"]


def test_the_hash_changes_with_content_args_base_and_ca_but_not_with_ignored_files(tmp_path: Path) -> None:
    app = _context(tmp_path)
    ca = tmp_path / "ca.crt"
    ca.write_text("CA one\n")
    plan = images.plans(_project(tmp_path, COMPOSE))[0]

    def digest(base: str = "sha256:1", bundle: Path | None = ca) -> str:
        return images.build_hash(plan, images.context_files(plan), [base], bundle)

    first = digest()
    assert digest() == first
    (app / "debug.log").write_text("more noise\n")
    (app / "node_modules/pkg/index.js").write_text("y\n")
    assert digest() == first  # ignored files do not count
    assert digest(base="sha256:2") != first
    assert digest(bundle=None) != first
    (app / "src/main.py").write_text("print('changed')\n")
    assert digest() != first
    changed = digest()
    (app / "src/main.py").chmod(0o755)
    assert digest() != changed  # the executable bit is content too


def test_the_context_tar_carries_the_ca_bundle_at_the_root(tmp_path: Path) -> None:
    _context(tmp_path)
    ca = tmp_path / "ca.crt"
    ca.write_text("CA\n")
    plan = images.plans(_project(tmp_path, COMPOSE))[0]
    with images.context_tar(plan, images.context_files(plan), ca) as handle, tarfile.open(fileobj=handle) as tar:
        names = tar.getnames()
        member = tar.extractfile(images.CA_NAME)
        assert member is not None and member.read() == b"CA\n"
    assert "src/main.py" in names and images.CA_NAME in names and "debug.log" not in names


def test_a_context_without_a_dockerfile_is_named(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    plan = images.plans(_project(tmp_path, "services:\n  web:\n    build: ./app\n"))[0]
    with pytest.raises(images.RuntimeFailure, match="no Dockerfile in"):
        images.context_files(plan)


@pytest.mark.parametrize(("size", "text"), [(512, "512 B"), (75_300_000, "75.3 MB"), (2_500_000_000, "2.5 GB")])
def test_sizes_read_like_docker_images(size: int, text: str) -> None:
    assert images.human_size(size) == text
