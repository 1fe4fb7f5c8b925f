#!/usr/bin/env python3
"""Copies of the stack's Compose files that docker-compose 1.x (the Python one, e.g. Debian's 1.29.2) accepts.

    python3 tools/compose_v1.py [-f FILE]... [--profiles dev|static] [--env-file FILE] [-o DIR]

The stack's files follow the current Compose Specification; docker-compose 1.29 predates five of its keys and
refuses the whole file for them: top-level `name`, `healthcheck.start_interval`, `depends_on.<service>.required`,
`develop` and `deploy.resources.limits.pids`. This writes each file (default: compose.yaml) into DIR (default: a
new temporary folder) without them (the pids limit becomes the older `pids_limit`), and without the `x-` keys
that only unistack reads, and prints the docker-compose arguments to use them:

    docker-compose $(python3 tools/compose_v1.py -f compose.yaml -f compose.production.yaml \\
        --env-file environments/production.env) -p NAME --env-file environments/production.env up -d

A dependency marked `required: false` on a service that the active profiles leave out is dropped (docker-compose
1.x would refuse it); the profiles come from --profiles, else $COMPOSE_PROFILES, else the --env-file. Everything
else, `${VAR}` interpolation included, is left to docker-compose. Docker Compose v2 (2.20 or newer) reads the
files as they are. Needs PyYAML, which docker-compose 1.x itself depends on: run it with docker-compose's Python.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("compose_v1.py needs PyYAML: run it with the Python that runs docker-compose (e.g. /usr/bin/python3)")


def env_file_value(path: Path, name: str) -> str | None:
    """NAME=value from a .env file (no interpolation: enough for COMPOSE_PROFILES)."""
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return None


def active_profiles(args: argparse.Namespace) -> set[str]:
    text = args.profiles or os.environ.get("COMPOSE_PROFILES")
    if text is None and args.env_file is not None:
        text = env_file_value(args.env_file, "COMPOSE_PROFILES")
    return {p.strip() for p in (text or "").split(",") if p.strip()}


def service_profiles(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each service's profiles, as the merged files would give them (a later file's list replaces)."""
    found: dict[str, list[str]] = {}
    for doc in docs:
        for name, spec in (doc.get("services") or {}).items():
            found.setdefault(name, [])
            if isinstance(spec, dict) and "profiles" in spec:
                found[name] = [str(p) for p in spec["profiles"] or []]
    return found


def enabled(profiles: list[str], active: set[str]) -> bool:
    return not profiles or "*" in active or any(p in active for p in profiles)


def convert(doc: dict[str, Any], known: dict[str, list[str]], active: set[str]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "name" and not k.startswith("x-")}
    for spec in (out.get("services") or {}).values():
        if not isinstance(spec, dict):
            continue
        for key in [k for k in spec if k.startswith("x-") or k == "develop"]:
            del spec[key]
        if isinstance(spec.get("healthcheck"), dict):
            spec["healthcheck"].pop("start_interval", None)
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits")
        if isinstance(limits, dict) and "pids" in limits:
            spec["pids_limit"] = limits.pop("pids")
        depends_on = spec.get("depends_on")
        if isinstance(depends_on, dict):
            for dep, options in list(depends_on.items()):
                if not isinstance(options, dict):
                    continue
                required = options.pop("required", True)
                if required is False and not (dep in known and enabled(known[dep], active)):
                    del depends_on[dep]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compose_v1.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--file", action="append", type=Path, dest="files", help="a Compose file (repeat)")
    parser.add_argument("--profiles", help="the active profiles, comma-separated (default: $COMPOSE_PROFILES)")
    parser.add_argument("--env-file", type=Path, help="read COMPOSE_PROFILES from here when not given otherwise")
    parser.add_argument("-o", "--output", type=Path, help="folder for the copies (default: a new temporary one)")
    args = parser.parse_args(argv)
    files = args.files or [Path("compose.yaml")]
    docs = [yaml.safe_load(path.read_text()) or {} for path in files]
    known, active = service_profiles(docs), active_profiles(args)
    output = args.output or Path(tempfile.mkdtemp(prefix="compose-v1-"))
    output.mkdir(parents=True, exist_ok=True)
    words = ["--project-directory", str(files[0].resolve().parent)]
    for index, (path, doc) in enumerate(zip(files, docs, strict=True)):
        target = output / f"{index}-{path.name}"
        text = yaml.safe_dump(convert(doc, known, active), sort_keys=False, default_flow_style=False, width=120)
        target.write_text(f"# written by stack/tools/compose_v1.py from {path.resolve()}: do not edit\n{text}")
        words += ["-f", str(target)]
    print(" ".join(words))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
