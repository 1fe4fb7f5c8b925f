"""Merging an override document onto a base, with the Compose Specification's merge rules.

Owns the rules of the specification's merge chapter as compose-go applies them: mappings merge key by key;
``command``, ``entrypoint`` and ``healthcheck.test`` are replaced; ``environment``, ``labels``, ``annotations``,
``build.args``, ``sysctls``, ... merge as mappings whether written as lists or maps; set-like sequences
(``ports``, ``volumes``, ``secrets``, ``profiles``, ``dns``, ...) are appended and de-duplicated by their unique
key (a later entry replaces an earlier one in place); other sequences are appended; ``!reset`` removes and
``!override`` replaces without merging. ``x-*`` keys are replaced as a whole, except ``x-unistack`` which is
merged (its ``process.command`` replaced). Never interpolates or validates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unistack.config.yamlfile import RESET, Override, parse_yaml, strip_markers

Path = tuple[str, ...]
Merger = Callable[[Any, Any, Path], Any]


def merge_texts(base_yaml: str, override_yaml: str) -> dict[str, Any]:
    """Parse two Compose YAML texts and merge the second onto the first."""
    return merge(parse_yaml(base_yaml).data, parse_yaml(override_yaml).data)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` onto ``base`` (neither is changed); the result holds no ``!reset``/``!override``."""
    result = _merge_mapping(strip_markers(base), override, ())
    return result


def _matches(path: Path, pattern: Path) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == k for k, p in zip(path, pattern, strict=True))


def _merge_value(base: Any, over: Any, path: Path) -> Any:
    if isinstance(over, Override):
        return strip_markers(over.value)
    for pattern, merger in _SPECIAL:
        if _matches(path, pattern):
            return merger(base, over, path)
    if over is None:
        return base
    if isinstance(base, dict) and isinstance(over, dict):
        return _merge_mapping(base, over, path)
    if isinstance(base, list) and isinstance(over, list):
        return [*base, *strip_markers(over)]
    return strip_markers(over)


def _merge_mapping(base: dict[str, Any], over: dict[str, Any], path: Path) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        if value is RESET:
            result.pop(key, None)
        elif key not in result or result[key] is None or (key.startswith("x-") and key != "x-unistack"):
            result[key] = strip_markers(value)
        else:
            result[key] = _merge_value(result[key], value, (*path, key))
    return result


# --- special mergers -------------------------------------------------------------------------------------


def _replace(base: Any, over: Any, path: Path) -> Any:
    return strip_markers(over)


def to_mapping(value: Any) -> dict[str, Any]:
    """``["A=1", "B"]`` or ``{"A": 1, "B": None}`` -> ``{"A": 1, "B": None}`` (RESET markers kept)."""
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if item is RESET:
                continue
            key, sep, val = str(item).partition("=")
            result[key] = val if sep else None
    elif isinstance(value, str):
        key, sep, val = value.partition("=")
        result[key] = val if sep else None
    return result


def _kv_mapping(base: Any, over: Any, path: Path) -> Any:
    result = to_mapping(strip_markers(base))
    for key, value in to_mapping(over).items():
        if value is RESET:
            result.pop(key, None)
        else:
            result[key] = strip_markers(value)
    return result


def _names_mapping(default: Any) -> Merger:
    """Lists of names (``depends_on``, ``networks``, ``models``) become mappings, then merge."""

    def convert(value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return {str(v): (dict(default) if isinstance(default, dict) else default) for v in value}
        return {}

    def merger(base: Any, over: Any, path: Path) -> Any:
        return _merge_mapping(convert(strip_markers(base)), convert(over), path)

    return merger


def _to_sequence(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not RESET]
    if isinstance(value, dict):
        items: list[Any] = []
        for key, val in value.items():
            if val is RESET:
                continue
            if val is None:
                items.append(key)
            elif isinstance(val, list):
                items.extend(f"{key}={_text(v)}" for v in val)
            else:
                items.append(f"{key}={_text(val)}")
        return sorted(items)
    return [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unique(index: Callable[[Any], str]) -> Merger:
    """Append, then keep one entry per unique key; a later entry replaces an earlier one in place."""

    def merger(base: Any, over: Any, path: Path) -> Any:
        result: list[Any] = []
        seen: dict[str, int] = {}
        for item in [*_to_sequence(strip_markers(base)), *_to_sequence(strip_markers(over))]:
            key = index(item)
            if key in seen:
                result[seen[key]] = item
            else:
                seen[key] = len(result)
                result.append(item)
        return result

    return merger


def _key_before_equals(item: Any) -> str:
    return _text(item).partition("=")[0]


def _whole(item: Any) -> str:
    return repr(item) if isinstance(item, dict) else _text(item)


def _volume_target(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target", ""))
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _device_target(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target", ""))
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _mount_target(default_dir: str) -> Callable[[Any], str]:
    def index(item: Any) -> str:
        if isinstance(item, dict):
            if "target" in item:
                return str(item["target"])
            return f"{default_dir}/{item.get('source')}"
        return f"{default_dir}/{item}"

    return index


def _port_key(item: Any) -> str:
    if isinstance(item, dict):
        host = item.get("host_ip") or "0.0.0.0"
        return f"{host}:{item.get('published')}:{item.get('target')}/{item.get('protocol') or 'tcp'}"
    return _text(item)


def _env_file_path(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("path", ""))
    return _text(item)


def _extra_hosts(base: Any, over: Any, path: Path) -> Any:
    result = _to_sequence(strip_markers(base))
    result.extend(item for item in _to_sequence(strip_markers(over)) if item not in result)
    return result


def _logging(base: Any, over: Any, path: Path) -> Any:
    if not isinstance(base, dict) or not isinstance(over, dict):
        return strip_markers(over) if over is not None else base
    if "driver" not in over or "driver" not in base or over["driver"] == base["driver"]:
        return _merge_mapping(base, over, path)
    return strip_markers(over)


def _build(base: Any, over: Any, path: Path) -> Any:
    def as_mapping(value: Any) -> Any:
        return {"context": value} if isinstance(value, str) else value

    base, over = as_mapping(base), as_mapping(over)
    if isinstance(base, dict) and isinstance(over, dict):
        return _merge_mapping(base, over, path)
    return strip_markers(over) if over is not None else base


def _ipam_config(base: Any, over: Any, path: Path) -> Any:
    result = [dict(c) if isinstance(c, dict) else c for c in _to_sequence(strip_markers(base))]
    for config in _to_sequence(over):
        match = next(
            (
                i
                for i, c in enumerate(result)
                if isinstance(c, dict) and isinstance(config, dict) and c.get("subnet") == config.get("subnet")
            ),
            None,
        )
        if match is None:
            result.append(strip_markers(config))
        else:
            result[match] = _merge_mapping(result[match], config, (*path, "*"))
    return result


_KV = _kv_mapping
_SET = _unique(_key_before_equals)

_SPECIAL: list[tuple[Path, Merger]] = [
    (("services", "*", "command"), _replace),
    (("services", "*", "entrypoint"), _replace),
    (("services", "*", "healthcheck", "test"), _replace),
    (("services", "*", "x-unistack", "process", "command"), _replace),
    (("services", "*", "x-unistack", "dependencies", "install"), _replace),
    (("services", "*", "ulimits", "*"), _replace),
    (("services", "*", "environment"), _KV),
    (("services", "*", "labels"), _KV),
    (("services", "*", "annotations"), _KV),
    (("services", "*", "sysctls"), _KV),
    (("services", "*", "build", "args"), _KV),
    (("services", "*", "build", "labels"), _KV),
    (("services", "*", "build", "additional_contexts"), _KV),
    (("services", "*", "deploy", "labels"), _KV),
    (("services", "*", "x-unistack", "process", "environment"), _KV),
    (("networks", "*", "labels"), _KV),
    (("volumes", "*", "labels"), _KV),
    (("secrets", "*", "labels"), _KV),
    (("configs", "*", "labels"), _KV),
    (("services", "*", "build"), _build),
    (("services", "*", "logging"), _logging),
    (("services", "*", "depends_on"), _names_mapping({"condition": "service_started", "required": True})),
    (("services", "*", "networks"), _names_mapping(None)),
    (("services", "*", "models"), _names_mapping(None)),
    (("services", "*", "extra_hosts"), _extra_hosts),
    (("services", "*", "build", "extra_hosts"), _extra_hosts),
    (("services", "*", "ports"), _unique(_port_key)),
    (("services", "*", "expose"), _unique(_whole)),
    (("services", "*", "volumes"), _unique(_volume_target)),
    (("services", "*", "devices"), _unique(_device_target)),
    (("services", "*", "secrets"), _unique(_mount_target("/run/secrets"))),
    (("services", "*", "configs"), _unique(_mount_target(""))),
    (("services", "*", "env_file"), _unique(_env_file_path)),
    (("services", "*", "label_file"), _unique(_whole)),
    (("services", "*", "tmpfs"), _SET),
    (("services", "*", "profiles"), _SET),
    (("services", "*", "cap_add"), _SET),
    (("services", "*", "cap_drop"), _SET),
    (("services", "*", "dns"), _SET),
    (("services", "*", "dns_opt"), _SET),
    (("services", "*", "dns_search"), _SET),
    (("services", "*", "links"), _SET),
    (("services", "*", "build", "platform"), _SET),
    (("services", "*", "build", "tags"), _SET),
    (("services", "*", "networks", "*", "aliases"), _SET),
    (("services", "*", "networks", "*", "link_local_ips"), _SET),
    (("networks", "*", "ipam", "config"), _ipam_config),
]
