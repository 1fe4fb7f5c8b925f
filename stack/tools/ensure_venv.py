#!/usr/bin/env python3
"""Make sure a virtual environment exists and holds what a manifest asks for; fast when nothing changed.

    ensure_venv.py VENV_DIR MANIFEST [--extra NAME]... [--python PYTHON]

MANIFEST is either a requirements file (installed with ``pip install -r``) or a project folder with a
pyproject.toml / setup.py (installed editable with ``pip install -e 'DIR[extras]'``, so code edits need no
reinstall). Relative paths are taken from the current folder.

What it does, in order:
  1. takes a lock beside the venv, so two services ensuring the same venv at once do not run pip together;
  2. creates the venv when VENV_DIR/bin/python is missing (nothing is ever deleted);
  3. hashes the manifest (the requirements file and the files it includes with -r/-c, or the project's
     pyproject.toml/setup.cfg/setup.py), the extras and the venv's Python version, and compares with the stamp
     VENV_DIR/.unistack-stamp: when equal, it prints one line and exits 0 in well under a second;
  4. otherwise runs pip install (which adds or upgrades what the manifest asks for and never uninstalls), and
     writes the stamp only when pip succeeded, so a failed install is retried on the next ``up``.

Exit code: 0 when the venv is ready, 1 when creating it or pip failed (the output says why), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ca_bundle, digest, fail, file_bytes, locked, read_stamp, say, write_stamp

TOOL = "ensure_venv"
STAMP = ".unistack-stamp"
PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
_INCLUDE = re.compile(r"^\s*(-r|--requirement|-c|--constraint)[\s=]+(\S+)")


def requirement_files(path: Path, seen: set[Path] | None = None) -> list[Path]:
    """The requirements file and every file it includes (-r / -c), recursively, in a stable order."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    found = [path]
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        match = _INCLUDE.match(line)
        if match:
            found += requirement_files(path.parent / match.group(2), seen)
    return found


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def python_works(python: Path) -> str | None:
    """The interpreter's version string, or None when it is missing or broken (e.g. its base Python is gone)."""
    if not python.exists():
        return None
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version)"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def create_venv(venv: Path, base_python: str) -> str:
    say(TOOL, f"creating {venv} with {base_python}")
    result = subprocess.run([base_python, "-m", "venv", str(venv)])
    version = python_works(venv_python(venv))
    if result.returncode != 0 or version is None:
        fail(TOOL, f"could not create the virtual environment {venv} (is the python3-venv package installed?)")
    assert version is not None
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ensure_venv.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path, help="the virtual environment's folder")
    parser.add_argument("manifest", type=Path, help="a requirements file, or a project folder (installed editable)")
    parser.add_argument("--extra", action="append", default=[], help="an optional-dependencies group (projects)")
    parser.add_argument("--python", default=sys.executable, help="the Python that creates the venv")
    args = parser.parse_args(argv)

    began = time.monotonic()
    venv: Path = args.venv.absolute()
    manifest: Path = args.manifest.absolute()
    if manifest.is_dir():
        if not any((manifest / name).is_file() for name in PROJECT_FILES):
            fail(TOOL, f"{manifest} has no pyproject.toml, setup.cfg or setup.py", 2)
        target = f"{manifest}[{','.join(args.extra)}]" if args.extra else str(manifest)
        pip_args = ["-e", target]
        hashed = [manifest / name for name in PROJECT_FILES]
    elif manifest.is_file():
        if args.extra:
            fail(TOOL, "--extra only applies to a project folder", 2)
        pip_args = ["-r", str(manifest)]
        hashed = requirement_files(manifest)
    else:
        fail(TOOL, f"{manifest} does not exist (expected a requirements file or a project folder)", 2)

    venv.mkdir(parents=True, exist_ok=True)
    with locked(venv / ".unistack-lock", TOOL):
        version = python_works(venv_python(venv)) or create_venv(venv, args.python)
        wanted = digest([version, " ".join(pip_args), *(f"{p}\n".encode() + file_bytes(p) for p in hashed)])
        stamp = venv / STAMP
        if read_stamp(stamp) == wanted:
            say(TOOL, f"{venv.name} is up to date with {manifest.name} ({time.monotonic() - began:.2f}s)")
            return 0

        say(TOOL, f"installing {' '.join(pip_args)} into {venv} (the manifest changed or this is the first run)")
        env = dict(os.environ)
        bundle = ca_bundle()
        if bundle and not env.get("PIP_CERT"):
            env["PIP_CERT"] = bundle
        env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        env.setdefault("PIP_PROGRESS_BAR", "off")
        command = [str(venv_python(venv)), "-m", "pip", "install", *pip_args]
        result = subprocess.run(command, env=env, cwd=manifest if manifest.is_dir() else manifest.parent)
        if result.returncode != 0:
            fail(
                TOOL,
                f"pip install failed with exit code {result.returncode}; the stamp is unchanged, so the next "
                "up tries again (certificate errors: set SSL_CERT_FILE to your CA bundle)",
            )
        write_stamp(stamp, wanted)
        say(TOOL, f"{venv.name} is ready ({time.monotonic() - began:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
