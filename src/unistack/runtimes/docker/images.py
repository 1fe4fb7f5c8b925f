"""Images for the Docker runtime: build what a service's ``build`` describes, only when it changed, and make sure
its base images are here.

- A build plan is one image: the services that name it (backend and migrate share ``stack-backend``) must agree
  on how it is built.
- The build context is sent as a tar made here: the files ``.dockerignore`` keeps, plus the host's CA bundle as
  ``unistack-ca.crt`` at the context root, so stages that run pip or npm behind an intercepting proxy can trust
  it. The Dockerfile decides which stages copy it; the final stage never should.
- "Changed" is a content hash (files, their executable bits, the Dockerfile name, target, build args, the CA
  bundle and the ids of the base images) stored as the image label ``dev.unistack.build-hash``. Same hash: no
  build at all. Different hash: Docker's own layer cache still skips the steps whose inputs did not change.
- The base (``debian:bookworm-slim`` by default) is pulled when a registry answers; otherwise
  ``base_image.bootstrap_base`` makes it with debootstrap and ``docker import``, as air-gapped users must.

Never makes a base image itself (base_image.py does). Every function here is blocking (the docker SDK is); the
runtime calls them in threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unistack.config.model import Project, Service
from unistack.errors import ConfigError, NotSupported, PermanentFailure, Problem, RuntimeFailure
from unistack.runtimes.docker.base_image import BuildResult, Emit, bootstrap_base, image_size, split_name

CA_NAME = "unistack-ca.crt"
HASH_LABEL = "dev.unistack.build-hash"

_image_locks: dict[str, threading.Lock] = {}
_image_locks_guard = threading.Lock()


def _lock_for(image: str) -> threading.Lock:
    with _image_locks_guard:
        return _image_locks.setdefault(image, threading.Lock())


# ---------------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class BuildPlan:
    image: str
    context: Path
    dockerfile: str  # relative to the context
    target: str | None
    args: tuple[tuple[str, str], ...]
    services: tuple[str, ...]


def image_name(project: Project, service: Service) -> str:
    """The image a service runs: its ``image``, else Compose's default ``<project>-<service>``."""
    image = service.spec.get("image")
    return str(image) if image else f"{project.name}-{service.name}"


def _build_args(raw: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, dict):
        items = [(str(k), "" if v is None else str(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = []
        for entry in raw:
            name, _, value = str(entry).partition("=")
            items.append((name, value if "=" in str(entry) else os.environ.get(name, "")))
    else:
        items = []
    return tuple(sorted(items))


def plan_for(project: Project, service: Service) -> BuildPlan | None:
    build = service.spec.get("build")
    if not isinstance(build, dict):
        return None
    context = str(build.get("context", "."))
    if "://" in context:
        raise NotSupported(
            f"service {service.name!r}: a remote build context ({context}) cannot be built offline; "
            "use a folder of the project"
        )
    return BuildPlan(
        image=image_name(project, service),
        context=Path(context),
        dockerfile=str(build.get("dockerfile", "Dockerfile")),
        target=build.get("target"),
        args=_build_args(build.get("args")),
        services=(service.name,),
    )


def plans(project: Project, services: Sequence[str] | None = None) -> list[BuildPlan]:
    """One plan per image, in the project's service order; services that share an image must agree on it."""
    by_image: dict[str, BuildPlan] = {}
    problems: list[Problem] = []
    for name in services or list(project.services):
        plan = plan_for(project, project.services[name])
        if plan is None:
            continue
        seen = by_image.get(plan.image)
        if seen is None:
            by_image[plan.image] = plan
        elif (seen.context, seen.dockerfile, seen.target, seen.args) != (
            plan.context,
            plan.dockerfile,
            plan.target,
            plan.args,
        ):
            problems.append(
                Problem(
                    f"services {seen.services[0]!r} and {name!r} both name image {plan.image!r} but build it "
                    "differently.",
                    file=project.files[0],
                    key=f"services.{name}.build",
                    fix="give them the same build section, or different image names.",
                )
            )
        else:
            by_image[plan.image] = dataclasses.replace(seen, services=(*seen.services, name))
    if problems:
        raise ConfigError(problems)
    return list(by_image.values())


# ---------------------------------------------------------------------------------------------------- context


def ca_bundle() -> Path | None:
    """The host's CA bundle (SSL_CERT_FILE first): what pip and npm in a build stage must trust."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def context_files(plan: BuildPlan) -> list[str]:
    """The files and folders of the context that its ignore file keeps, sorted, relative to the context.

    The ignore file is the Dockerfile's own (``<Dockerfile>.dockerignore``, next to it) when there is one, else the
    context's ``.dockerignore``, as BuildKit and Compose read them (and ``unistack watch`` does)."""
    from docker.utils.build import exclude_paths

    if not plan.context.is_dir():
        raise RuntimeFailure(f"build context {plan.context} (service {plan.services[0]!r}) is not a folder")
    if not (plan.context / plan.dockerfile).is_file():
        raise RuntimeFailure(
            f"service {plan.services[0]!r}: no {plan.dockerfile} in {plan.context}; add one or fix build.dockerfile"
        )
    patterns: list[str] = []
    for ignore in (plan.context / f"{plan.dockerfile}.dockerignore", plan.context / ".dockerignore"):
        if ignore.is_file():
            lines = ignore.read_text().splitlines()
            patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
            break
    kept: Iterable[str] = exclude_paths(str(plan.context), patterns, dockerfile=plan.dockerfile)
    return sorted(p for p in kept if p != CA_NAME)


def external_bases(plan: BuildPlan) -> list[str]:
    """The images the Dockerfile starts FROM (build args and ARG defaults applied; its own stages left out)."""
    text = (plan.context / plan.dockerfile).read_text()
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    args = dict(plan.args)
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = raw.strip()
        arg = re.match(r"(?i)ARG\s+(\w+)(?:=(\S*))?", line)
        if arg and not bases and not stages:
            defaults[arg.group(1)] = (arg.group(2) or "").strip("\"'")
            continue
        found = re.match(r"(?i)FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if not found:
            continue
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), defaults.get(m.group(1), "")), found.group(1))
        if image.lower() not in stages and image != "scratch" and image not in bases:
            bases.append(image)
        if found.group(2):
            stages.add(found.group(2).lower())
    return bases


def build_hash(plan: BuildPlan, files: list[str], base_ids: list[str], ca: Path | None) -> str:
    digest = hashlib.sha256()
    digest.update(repr((plan.dockerfile, plan.target, plan.args, base_ids)).encode())
    for rel in files:
        path = plan.context / rel
        if path.is_symlink():
            digest.update(f"L {rel} {path.readlink()}\n".encode())
        elif path.is_file():
            digest.update(f"F {rel} {path.stat().st_mode & 0o111:o}\n".encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        elif path.is_dir():
            digest.update(f"D {rel}\n".encode())
    if ca is not None:
        digest.update(b"CA\n" + ca.read_bytes())
    return digest.hexdigest()[:32]


def context_tar(plan: BuildPlan, files: list[str], ca: Path | None) -> io.BufferedRandom:
    """The build context as an uncompressed tar in a temporary file (rewound), the CA bundle added."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel in files:
            tar.add(str(plan.context / rel), arcname=rel, recursive=False)
        if ca is not None:
            info = tar.gettarinfo(str(ca), arcname=CA_NAME)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
            with ca.open("rb") as handle:
                tar.addfile(info, handle)
    out.seek(0)
    return out


# ---------------------------------------------------------------------------------------------------- engine side


def _image_or_none(client: Any, name: str) -> Any:
    import docker.errors

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise RuntimeFailure(f"the Docker engine could not look up image {name}: {exc.explanation}") from exc


def _pull(client: Any, name: str, emit: Emit) -> tuple[str | None, str]:
    """(image id, "") when ``name`` is here or a registry gave it; (None, the registry's answer) otherwise."""
    import docker.errors

    image = _image_or_none(client, name)
    if image is not None:
        return str(image.id), ""
    emit(f"image {name} is not here; asking a registry")
    try:
        repository, tag = split_name(name)
        client.images.pull(repository, tag=tag)
        return str(client.images.get(name).id), ""
    except docker.errors.APIError as exc:
        return None, str(exc.explanation or exc).strip()


def image_exists(client: Any, name: str) -> bool:
    return _image_or_none(client, name) is not None


def image_id(client: Any, name: str) -> str | None:
    image = _image_or_none(client, name)
    return None if image is None else str(image.id)


def ensure_base(client: Any, base: str, emit: Emit, bootstrap: bool = False) -> str:
    """The id of ``base``: present, else pulled, else (when asked) bootstrapped; else a clear failure. Services
    building in parallel wait for one another here: a base is fetched or bootstrapped once."""
    with _lock_for(f"base {base}"):
        image_id, reason = _pull(client, base, emit)
        if image_id is not None:
            return image_id
        if bootstrap and shutil.which("debootstrap") is not None and os.geteuid() == 0:
            emit(f"no registry has {base}: making it offline (unistack images bootstrap, about a minute)")
            bootstrap_base(client, base, emit=emit)
            return str(client.images.get(base).id)
    raise RuntimeFailure(
        f"base image {base} is missing and no registry answered ({reason}). Make it offline with "
        f"`unistack images bootstrap --base {base}` (debootstrap + docker import), or build with "
        "`unistack build --bootstrap`"
    )


def build(
    client: Any, plan: BuildPlan, emit: Emit, *, force: bool = False, no_cache: bool = False, bootstrap: bool = False
) -> BuildResult:
    """Build ``plan.image`` unless an image with the same content hash is already there (``force`` builds anyway)."""
    import docker.errors

    started = time.monotonic()
    with _lock_for(plan.image):
        files = context_files(plan)
        base_ids = [ensure_base(client, base, emit, bootstrap) for base in external_bases(plan)]
        ca = ca_bundle()
        wanted = build_hash(plan, files, base_ids, ca)
        current = _image_or_none(client, plan.image)
        if current is not None and not force and not no_cache and current.labels.get(HASH_LABEL) == wanted:
            return BuildResult(plan.image, plan.services, False, time.monotonic() - started, image_size(current))
        emit(f"building {plan.image} from {plan.context} ({len(files)} files in the context)")
        tail: list[str] = []
        image_id = None
        context = context_tar(plan, files, ca)
        try:
            stream = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=plan.image,
                dockerfile=plan.dockerfile,
                target=plan.target,
                buildargs=dict(plan.args),
                labels={HASH_LABEL: wanted},
                rm=True,
                forcerm=True,
                nocache=no_cache,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise RuntimeFailure(
                        f"building {plan.image} (service {', '.join(plan.services)}) failed: {detail.strip()}\n"
                        + "\n".join(tail[-20:])
                    )
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line.rstrip())
                        emit(line.rstrip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = aux["ID"]
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"building {plan.image} failed: {exc.explanation or exc}") from exc
        finally:
            context.close()
        built = client.images.get(image_id or plan.image)
        return BuildResult(plan.image, plan.services, True, time.monotonic() - started, image_size(built))


def stale(client: Any, plan: BuildPlan) -> str | None:
    """Why ``build`` would build ``plan.image`` now (it is missing, or its context, Dockerfile, arguments or base
    changed since it was built), or None; never builds, pulls or bootstraps anything."""
    current = _image_or_none(client, plan.image)
    if current is None:
        return f"its image {plan.image} is missing"
    base_ids = []
    for base in external_bases(plan):
        found = _image_or_none(client, base)
        if found is None:
            return f"the base image {base} of {plan.image} is missing"
        base_ids.append(str(found.id))
    if current.labels.get(HASH_LABEL) != build_hash(plan, context_files(plan), base_ids, ca_bundle()):
        return f"the build context of {plan.image} changed"
    return None


def ensure_service_image(client: Any, project: Project, service: Service, emit: Emit) -> None:
    """What ``up`` does before a service's first start: build when its image is missing or its context changed;
    for a service without ``build``, make sure its image is here (pulled when a registry answers)."""
    plan = plan_for(project, service)
    if plan is None:
        name = image_name(project, service)
        if _pull(client, name, emit)[0] is None:
            raise PermanentFailure(
                f"service {service.name!r} runs image {name}, which is not here, and no registry answered; "
                "give the service a `build` section, or `docker load` the image"
            )
        return
    # `up` works out of the box: a missing base image is bootstrapped when this machine can (debootstrap, root)
    result = build(client, plan, emit, bootstrap=True)
    if result.built:
        emit(f"built {result.image} in {result.seconds:.1f} s ({human_size(result.size)})")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
