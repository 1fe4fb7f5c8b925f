"""What a service's container mounts, as container-create arguments: pure, no engine, no files written.

Owns ``volumes`` (named volumes of the project by their Compose names, anonymous ones labelled so ``down -v``
finds them, bind mounts with the host folders to create when missing, tmpfs mounts with their size and mode),
the ``tmpfs`` key, ``secrets`` and ``configs`` backed by a file (bind-mounted read-only, as Compose does without
swarm) and ``volumes_from`` (a service of the project as its container). What it cannot carry out is refused
with the key and the fix. The volumes themselves are created by ``resources``, the host folders by
``containers``. Never talks to Docker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docker.types import Mount

from unistack.config.formats import parse_bytes
from unistack.runtimes.docker.resources import container_name, instance_labels, is_external, volume_name
from unistack.runtimes.docker.spec_state import Translation


def volumes(translation: Translation, entries: list[dict[str, Any]]) -> None:
    mounts = translation.create.setdefault("mounts", [])
    for index, entry in enumerate(entries):
        key = f"volumes[{index}]"
        kind = entry.get("type", "volume")
        target, source = str(entry["target"]), entry.get("source")
        read_only = bool(entry.get("read_only", False))
        if kind == "volume":
            options = entry.get("volume") or {}
            if "subpath" in options:
                translation.refuse(f"{key}.volume.subpath", "needs a newer Docker Engine API than unistack uses")
            if source is None:  # anonymous: labelled, so `down -v` finds it
                labels = instance_labels(translation.project.name, translation.project.state_dir)
                mounts.append(
                    Mount(target, None, "volume", read_only, no_copy=bool(options.get("nocopy")), labels=labels)
                )
            elif str(source) not in translation.project.volumes:
                translation.refuse(
                    key,
                    f"uses volume {source!r}, which is not declared under the top-level volumes",
                    "declare it there",
                )
            else:
                name = volume_name(translation.project, str(source))
                mounts.append(Mount(target, name, "volume", read_only, no_copy=bool(options.get("nocopy"))))
        elif kind == "bind":
            options = entry.get("bind") or {}
            if options.get("selinux"):
                translation.refuse(f"{key}.bind.selinux", "is not supported by the docker runtime")
            if options.get("create_host_path", True) is not False:
                translation.host_paths.append(str(source))
            mounts.append(Mount(target, str(source), "bind", read_only, propagation=options.get("propagation")))
        elif kind == "tmpfs":
            options = entry.get("tmpfs") or {}
            size = parse_bytes(options["size"]) if options.get("size") is not None else None
            mounts.append(
                Mount(target, None, "tmpfs", read_only, tmpfs_size=size, tmpfs_mode=_mode(options.get("mode")))
            )
        else:
            translation.refuse(
                f"{key}.type", f"{kind!r} is not supported by the docker runtime (use volume, bind or tmpfs)"
            )


def tmpfs(translation: Translation, value: Any) -> None:
    entries = [value] if isinstance(value, str) else list(value)
    translation.create["tmpfs"] = {path: options for path, _, options in (str(e).partition(":") for e in entries)}


def files(translation: Translation, kind: str, value: list[Any], default_folder: str) -> None:
    """``secrets``/``configs`` backed by a file: mounted read-only, as Compose does without swarm."""
    definitions = translation.project.spec.get(kind) or {}
    mounts = translation.create.setdefault("mounts", [])
    for index, item in enumerate(value):
        entry = dict(item) if isinstance(item, Mapping) else {"source": str(item)}
        source = str(entry.get("source"))
        key = f"{kind}[{index}]"
        definition = definitions.get(source)
        if not isinstance(definition, Mapping):
            translation.refuse(key, f"names {source!r}, which is not declared under the top-level {kind}", "declare it")
            continue
        if not definition.get("file") or is_external(definition):
            translation.refuse(key, f"{source!r} is not backed by a file (only file: {kind} are supported)")
            continue
        for option in ("uid", "gid", "mode"):
            if option in entry:
                translation.refuse(f"{key}.{option}", "cannot be applied to a bind-mounted file (it keeps the host's)")
        target = str(entry.get("target") or source)
        if not target.startswith("/"):
            target = default_folder + target
        path = Path(str(definition["file"])).expanduser()
        host = path if path.is_absolute() else translation.project.working_dir / path
        mounts.append(Mount(target, str(host), "bind", read_only=True))


def volumes_from(translation: Translation, value: list[Any]) -> None:
    sources = []
    for item in value:
        text = str(item)
        if text.startswith("container:"):
            sources.append(text.partition(":")[2])
            continue
        name, _, mode = text.partition(":")
        other = translation.project.services.get(name)
        if other is None:
            raise ValueError(f"{name!r} is not a service of this project")
        reference = container_name(translation.project, other)
        sources.append(f"{reference}:{mode}" if mode else reference)
    translation.create["volumes_from"] = sources


def _mode(value: Any) -> int | None:
    if value is None:
        return None
    return int(value, 8) if isinstance(value, str) else int(value)
