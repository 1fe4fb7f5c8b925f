"""The base image made offline: debootstrap a minimal Debian (minbase) into a temporary folder, trim it like
Debian's official -slim images (no documentation, manuals or translations, no package cache) and ``docker import``
it, as machines that no registry answers must.

Never builds service images and never pulls: images.py does both, and calls ``bootstrap_base`` when a base is
missing. ``Emit``, ``BuildResult`` and the image-name and size helpers live here because both modules use them and
images.py imports this one (never the other way round). Every function here is blocking (the docker SDK and
debootstrap are); callers run them in threads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unistack.errors import NotSupported, RuntimeFailure

Emit = Callable[[str], None]

DEFAULT_BASE = "debian:bookworm-slim"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BOOTSTRAP_LABEL = "dev.unistack.bootstrap"


@dataclass(frozen=True)
class BuildResult:
    image: str
    services: tuple[str, ...]
    built: bool  # False: the image was already up to date
    seconds: float
    size: int  # bytes, as ``docker images`` reports


def split_name(name: str) -> tuple[str, str]:
    """``repository[:tag]`` as (repository, tag), the tag ``latest`` when none is given."""
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    return repository, tag or "latest"


def image_size(image: Any) -> int:
    """An image's size in bytes, as ``docker images`` reports it."""
    return int(image.attrs.get("Size", 0))


# Like Debian's official -slim images: no documentation, manuals or translations in later installs.
SLIM_DPKG = """\
# unistack bootstrap: keep images small (as Debian's official -slim images do)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
APT_CLEAN = """\
# unistack bootstrap: no package cache left in image layers
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""


def _slim(rootfs: Path, suite: str, mirror: str) -> None:
    for folder in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/lib/apt/lists"):
        target = rootfs / folder
        if target.is_dir():
            for entry in target.iterdir():
                if entry.name in ("locale.alias",):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/unistack-slim").write_text(SLIM_DPKG)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
    security = mirror.rstrip("/").removesuffix("/debian") + "/debian-security"
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\ndeb {security} {suite}-security main\n"
    )


def bootstrap_base(
    client: Any,
    name: str = DEFAULT_BASE,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    emit: Emit,
) -> BuildResult:
    """Make ``name`` from Debian packages alone: debootstrap (minbase) into a temporary folder, trim it like
    Debian's -slim images, and ``docker import`` it. Needs root and the debootstrap command."""
    mirror = mirror or os.environ.get("UNISTACK_DEBIAN_MIRROR") or DEFAULT_MIRROR
    if shutil.which("debootstrap") is None:
        raise NotSupported("`unistack images bootstrap` needs debootstrap: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise NotSupported(
            "`unistack images bootstrap` needs root (debootstrap creates device files and chroots): run it with sudo"
        )
    started = time.monotonic()
    repository, tag = split_name(name)
    with tempfile.TemporaryDirectory(prefix="unistack-bootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        emit(f"debootstrap --variant=minbase {suite} from {mirror}")
        command = ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            tail: list[str] = []
            for line in proc.stdout:
                tail = [*tail[-19:], line.rstrip()]
                if line.startswith(
                    ("I: Retrieving", "I: Validating", "I: Extracting", "I: Unpacking", "I: Configuring")
                ):
                    continue  # one line per package: too many to be progress
                emit(line.rstrip())
        if proc.returncode != 0:
            raise RuntimeFailure(f"debootstrap {suite} from {mirror} failed:\n" + "\n".join(tail))
        _slim(rootfs, suite, mirror)
        archive = Path(tmp) / "rootfs.tar"
        emit(f"packing the root file system and importing it as {name}")
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(archive), "."],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        import docker.errors

        try:
            client.api.import_image_from_file(
                str(archive),
                repository=repository,
                tag=tag,
                changes=[
                    'CMD ["bash"]',
                    "ENV LANG=C.UTF-8",
                    f"LABEL {BOOTSTRAP_LABEL}={suite}",
                ],
            )
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"docker import of {name} failed: {exc.explanation or exc}") from exc
    image = client.images.get(name)
    return BuildResult(name, (), True, time.monotonic() - started, image_size(image))
