"""Dependencies without rebuilds, with real processes: a service whose setup step installs from a manifest (pip,
from local wheels, no network) is installed into and restarted by itself when the manifest changes, and keeps
running as it was when the manifest is broken."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

SERVICE = """\
import importlib, json, os, time
found = {}
for name in ("foo", "bar"):
    try:
        found[name] = importlib.import_module(name).VERSION
    except ImportError:
        pass
print("app imports", found, flush=True)
with open("report.tmp", "w") as out:
    json.dump({"pid": os.getpid(), "modules": found}, out)
os.replace("report.tmp", "report.json")
while True:
    time.sleep(3600)
"""


def wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel holding ``name.py`` with ``VERSION`` (the format pip installs, made by hand)."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: unistack-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(text.encode())}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def compose(python: str) -> str:
    pip = [python, "-m", "pip", "install", "--no-index", "--find-links", "wheels", "--target", "site", "--upgrade"]
    return f"""
services:
  app:
    environment: {{PYTHONPATH: site, PIP_CONFIG_FILE: /dev/null, PIP_DISABLE_PIP_VERSION_CHECK: "1"}}
    stop_grace_period: 2s
    x-unistack:
      process:
        setup: {json.dumps([*pip, "-r", "requirements.txt"])}
        command: {json.dumps([python, "app.py"])}
      dependencies:
        manifests: [./requirements.txt]
"""


def report(instance: Instance) -> dict[str, Any] | None:
    try:
        return dict(json.loads((instance.folder / "report.json").read_text()))
    except (OSError, ValueError):
        return None


def test_a_changed_manifest_is_installed_and_the_service_restarted_by_itself(instance: Instance) -> None:
    wheel(instance.folder / "wheels", "foo", "1.0")
    (instance.folder / "app.py").write_text(SERVICE)
    (instance.folder / "requirements.txt").write_text("foo==1.0\n")
    instance.write(compose(sys.executable))
    instance.run("up", "-d", "--wait", check=True, timeout=120)
    first = instance.wait_for(lambda: report(instance), message="the first report")
    assert first["modules"] == {"foo": "1.0"}

    # a new dependency: installed beside the running service, which is then restarted and imports it
    wheel(instance.folder / "wheels", "bar", "2.0")
    (instance.folder / "requirements.txt").write_text("foo==1.0\nbar==2.0\n")
    second = instance.wait_for(
        lambda: (r := report(instance)) and "bar" in r["modules"] and r, timeout=60, message="bar importable"
    )
    assert second["modules"] == {"foo": "1.0", "bar": "2.0"} and second["pid"] != first["pid"]
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    messages = [e["message"] for e in instance.events() if e["kind"] == "install"]
    assert messages[0].startswith("app: requirements.txt changed; installing (")
    assert "installed bar 2.0" in messages[-1] and messages[-1].endswith("restarting")
    assert instance.ps()["app"]["state"] == "running"

    # a broken manifest: the install fails, the running service is left as it was, and the log says why
    (instance.folder / "requirements.txt").write_text("foo==1.0\nbar==2.0\nnope==1.0\n")
    failure = instance.wait_for(
        lambda: [e for e in instance.events() if e["kind"] == "error" and e["service"] == "app"],
        timeout=60,
        message="the failed install's event",
    )[0]
    assert "the install failed (exit code 1): ERROR: " in failure["message"]
    assert "No matching distribution found for nope==1.0" in failure["message"]
    assert "app keeps running as it was" in failure["message"]
    assert report(instance) == second and psutil.Process(second["pid"]).is_running()
    row = instance.ps()["app"]
    assert row["state"] == "running" and row["pid"] == second["pid"]
    log = (instance.state_dir() / "logs" / "app.log").read_text()
    assert "No matching distribution found for nope==1.0" in log
    logs = instance.run("logs", "app", check=True).stdout
    assert "No matching distribution found for nope==1.0" in logs


def test_a_manifest_without_an_installer_is_refused_in_process_mode(instance: Instance) -> None:
    instance.write(
        "services:\n  app:\n    x-unistack:\n      process: {command: [sleep, '60']}\n"
        "      dependencies: {manifests: [./requirements.txt]}\n"
    )
    result = instance.run("up", "-d")
    assert result.returncode == 2, result.stderr
    assert "service 'app' declares x-unistack.dependencies but nothing installs them as a host process" in result.stderr
    assert "Traceback" not in result.stderr
