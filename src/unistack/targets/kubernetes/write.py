"""Rendered manifests as text: YAML documents (config/yamlwriter.py's fast writer, ruamel for what it leaves), one
file per service named by its dependency layer (``00-project.yaml`` for what the services share, then
``01-db.yaml``, ``02-migrate.yaml``, ...), and ``apply.sh``, which applies them in that order and waits for each
layer (rollouts ready, Jobs complete; a failed Job or a stuck rollout stops it with the last log lines). Never
decides what an object holds (``render.py`` does).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from unistack.config import yamlwriter
from unistack.errors import UsageError
from unistack.targets.kubernetes.pods import dns_name
from unistack.targets.kubernetes.render import Rendered

HEADER = "# Rendered by `unistack render kubernetes`: edit the Compose file and render again."
_OURS = re.compile(r"\d\d-[a-z0-9-]+\.yaml|apply\.sh")


def dump(document: dict[str, Any]) -> str:
    return yamlwriter.to_yaml(document)


def stream(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream."""
    return "".join(f"---\n{dump(o)}" for o in objects)


def files(rendered: Rendered) -> dict[str, str]:
    """File name -> text: the shared objects, each service's objects by layer, and apply.sh."""
    found: dict[str, str] = {}
    if rendered.objects.get(""):
        found["00-project.yaml"] = f"{HEADER}\n{stream(rendered.objects[''])}"
    for index, layer in enumerate(rendered.layers, start=1):
        for name in layer:
            if rendered.objects.get(name):
                found[f"{index:02d}-{dns_name(name)}.yaml"] = f"{HEADER}\n{stream(rendered.objects[name])}"
    found["apply.sh"] = apply_script(rendered, [n for n in found if n.endswith(".yaml")])
    return found


def apply_script(rendered: Rendered, names: list[str]) -> str:
    """A POSIX shell script: ``kubectl apply`` of each layer's files, then a bounded wait on that layer."""
    lines = [
        "#!/bin/sh",
        HEADER,
        f"# Applies {rendered.project} layer by layer: a layer's Deployments and StatefulSets rolled out and ready,",
        "# its Jobs complete, before the next layer (what Kubernetes does not order: a dependent of a one-shot).",
        "# NAMESPACE=... selects the namespace, TIMEOUT=seconds bounds each wait (default 300).",
        "set -eu",
        'cd "$(dirname "$0")"',
        'TIMEOUT="${TIMEOUT:-300}"',
        'k() { kubectl ${NAMESPACE:+--namespace "$NAMESPACE"} "$@"; }',
        "fail() {",
        '  echo "apply.sh: $1 did not become ready; its last logs:" >&2',
        '  k logs "$1" --tail=20 >&2 || true',
        "  exit 1",
        "}",
        "wait_job() {",
        "  deadline=$(( $(date +%s) + TIMEOUT ))",
        "  while :; do",
        "    state=$(k get \"job/$1\" -o jsonpath='{.status.succeeded}/{.status.failed}')",
        '    case "$state" in 1/*) return 0 ;; */[1-9]*) fail "job/$1" ;; esac',
        '    [ "$(date +%s)" -lt "$deadline" ] || fail "job/$1"',
        "    sleep 2",
        "  done",
        "}",
    ]
    if "00-project.yaml" in names:
        lines.append("k apply -f 00-project.yaml")
    for index, layer in enumerate(rendered.layers, start=1):
        for name in layer:
            file = f"{index:02d}-{dns_name(name)}.yaml"
            if file in names:
                lines.append(f"k apply -f {shlex.quote(file)}")
        for name in layer:
            if name in rendered.jobs:
                lines.append(f"wait_job {shlex.quote(rendered.jobs[name])}")
            elif name in rendered.workloads:
                workload = shlex.quote(rendered.workloads[name])
                lines.append(f'k rollout status {workload} --timeout="${{TIMEOUT}}s" || fail {workload}')
    lines.append(f'echo "{rendered.project}: every layer applied and ready"')
    return "\n".join(lines) + "\n"


def write(rendered: Rendered, folder: Path) -> list[Path]:
    """The files into ``folder`` (made if missing); files of an earlier render that are not written again are
    removed (only ours: the header on their second line or first), anything else left alone."""
    texts = files(rendered)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.name not in texts and _OURS.fullmatch(old.name) and HEADER in old.read_text(errors="replace")[:400]:
                old.unlink()
        written = []
        for name, text in texts.items():
            path = folder / name
            path.write_text(text, encoding="utf-8")
            # a file holding a Secret is its owner's alone; the script runs
            path.chmod(0o755 if name == "apply.sh" else 0o600 if "\nkind: Secret\n" in text else 0o644)
            written.append(path)
    except OSError as exc:
        raise UsageError(f"cannot write the manifests into {folder}: {exc.strerror or exc}") from None
    return written
