"""Dependencies without rebuilds: from saving a manifest to the new package importable in the running service.

Both runtimes, on the test services of tests/integration/test_manifests.py (a host process whose setup step is
pip installing local wheels) and tests/docker/test_manifests.py (a container whose install command unpacks a
wheel from a bind-mounted folder): each run adds one new package to the manifest and times until the restarted
service reports it importable, and splits that into the daemon's reaction (save -> ``installing`` event), the
install (-> ``restarting`` event) and the restart (-> the service's report). Not the real stack: its manifests
are shared by every instance running from this working tree, which would all install and restart. Prints one
JSON object (medians of ``--runs``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.docker import test_manifests as docker_case
from tests.integration import test_manifests as process_case

from _common import busy_warning, environment, log


def cli(folder: Path, project: str, runtime: str, *args: str, env: dict[str, str]) -> None:
    argv = [sys.executable, "-m", "unistack", "-p", project, "--runtime", runtime, *args]
    result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}")


def events(folder: Path, project: str) -> list[dict[str, Any]]:
    path = folder / ".unistack" / project / "logs" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_for(what: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout}s")


def measure(
    folder: Path, project: str, manifest: Path, wheels: Path, report: Callable[[], dict[str, Any] | None], runs: int
) -> dict[str, Any]:
    lines = manifest.read_text().split()
    rows = []
    for run in range(runs):
        name = f"pkg{run}"
        process_case.wheel(wheels, name, "1.0")
        seen = len(events(folder, project))
        lines.append(f"{name}==1.0")
        saved = time.time()
        temporary = manifest.with_name(manifest.name + ".new")  # as editors save: a new file renamed over the old
        temporary.write_text("\n".join(lines) + "\n")
        temporary.replace(manifest)
        wait_for(lambda name=name: (r := report()) and name in r["modules"])
        done = time.time()
        news = [e for e in events(folder, project)[seen:] if e["kind"] == "install"]
        installing = next(e["at"] for e in news if "installing" in e["message"])
        restarting = next(e["at"] for e in news if e["message"].endswith("restarting"))
        rows.append(
            {
                "total_s": done - saved,
                "reaction_s": installing - saved,
                "install_s": restarting - installing,
                "restart_s": done - restarting,
            }
        )
        log(f"{project}: {name} importable {done - saved:.2f}s after the save")
    return {
        "runs": runs,
        **{key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]},
        "total_s_each": [round(r["total_s"], 3) for r in rows],
    }


def process_mode(tmp: Path, runs: int) -> dict[str, Any]:
    folder = tmp / "process"
    folder.mkdir()
    process_case.wheel(folder / "wheels", "foo", "1.0")
    (folder / "app.py").write_text(_reporting_all(process_case.SERVICE))
    (folder / "requirements.txt").write_text("foo==1.0\n")
    (folder / "compose.yaml").write_text(process_case.compose(sys.executable))
    env = {**os.environ, "NO_COLOR": "1"}
    cli(folder, "bench-deps", "process", "up", "-d", "--wait", env=env)
    try:

        def report() -> dict[str, Any] | None:
            try:
                return dict(json.loads((folder / "report.json").read_text()))
            except (OSError, ValueError):
                return None

        return measure(folder, "bench-deps", folder / "requirements.txt", folder / "wheels", report, runs)
    finally:
        cli(folder, "bench-deps", "process", "down", "-t", "1", env=env)


def docker_mode(tmp: Path, runs: int) -> dict[str, Any]:
    import docker
    from tests.docker.support import ensure_test_image, unique_name

    client = docker.from_env()
    image = ensure_test_image(client)
    folder = tmp / "docker"
    context = folder / "image"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(docker_case.DOCKERFILE)
    (context / "install.py").write_text(docker_case.INSTALLER)
    (context / "app.py").write_text(_reporting_all(docker_case.SERVICE))
    (context / "requirements.txt").write_text("foo==1.0\n")
    process_case.wheel(context / "wheels", "foo", "1.0")
    (folder / "wheels").mkdir()
    (folder / "out").mkdir()
    (folder / "out").chmod(0o777)
    (folder / "compose.yaml").write_text(docker_case.COMPOSE)
    name = unique_name()
    env = {**os.environ, "NO_COLOR": "1", "TEST_IMAGE": image}
    cli(folder, name, "docker", "up", "-d", "--wait", "--wait-timeout", "180", env=env)
    container = f"{name}-app-1"
    try:
        image_before = client.api.inspect_container(container)["Image"]

        def report() -> dict[str, Any] | None:
            try:
                return dict(ast.literal_eval((folder / "out" / "report.json").read_text()))
            except (OSError, ValueError, SyntaxError):
                return None

        figures = measure(folder, name, context / "requirements.txt", folder / "wheels", report, runs)
        figures["image_unchanged"] = client.api.inspect_container(container)["Image"] == image_before
        return figures
    finally:
        cli(folder, name, "docker", "down", "-v", "-t", "1", env=env)
        client.images.remove(f"{name}-app", force=True)
        client.close()


def _reporting_all(program: str) -> str:
    """The test service, importing every package of /wheels-like names (foo, bar, pkg0, pkg1, ...)."""
    return program.replace('("foo", "bar")', '["foo", "bar", *(f"pkg{i}" for i in range(50))]')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="saves per runtime (default 5)")
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="both")
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "deps", **environment()}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unistack-bench-deps-") as tmp:
        for runtime, run in (("process", process_mode), ("docker", docker_mode)):
            if args.runtime in (runtime, "both"):
                try:
                    report[runtime] = run(Path(tmp), max(1, args.runs))
                except Exception as exc:
                    report[runtime] = {"error": f"{exc!r}"[-2000:]}
                    log(f"{runtime} failed: {exc!r}")
    report["total_s"] = round(time.monotonic() - began, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if busy := busy_warning(report):
        report["warning"] = busy
    print(json.dumps(report, indent=2))
    return 1 if any("error" in (report.get(r) or {}) for r in ("process", "docker")) else 0


if __name__ == "__main__":
    sys.exit(main())
