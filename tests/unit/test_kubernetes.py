"""``unistack render kubernetes``: every mapping on small files, the stack's own configurations, every object
checked against the Kubernetes 1.35 API schemas (kubernetes-validate, strict: no unknown field), the files and
apply script written, refusals as exit 2. No cluster: what a cluster would do with them is not run here.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from ruamel.yaml import YAML

from unistack import config
from unistack.cli import main
from unistack.config.model import Project
from unistack.errors import ConfigError
from unistack.targets.kubernetes import render, write

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.35.0"
PASSWORD = "a-production-password"


def _project(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    return config.load(cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")})


def _valid(objects: list[dict[str, Any]]) -> None:
    """Each object against the API schema, and what the schema cannot see: the names an API server checks."""
    for document in objects:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        assert len(document["metadata"]["name"]) <= 63
        spec = document["spec"].get("template", {}).get("spec") if "spec" in document else None
        if spec is None:
            continue
        containers = [*spec.get("initContainers", []), *spec["containers"]]
        assert len({c["name"] for c in containers}) == len(containers), "container names are unique in a pod"
        volumes = [v["name"] for v in spec.get("volumes", [])]
        assert len(set(volumes)) == len(volumes), "volume names are unique in a pod"
        claims = {c["metadata"]["name"] for c in document["spec"].get("volumeClaimTemplates", [])}
        for container in containers:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in {*volumes, *claims}, f"{container['name']} mounts {mount['name']}"
        for init in spec.get("initContainers", []):
            assert not {"lifecycle", "readinessProbe", "livenessProbe", "startupProbe"} & set(init)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} in {[(o['kind'], o['metadata']['name']) for o in objects]}"
    return found[0]


def _kinds(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


# --- the stack --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production() -> render.Rendered:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSTGRES_PASSWORD", PASSWORD)
        project = config.load([str(ROOT / "stack" / "compose.yaml")], env_name="production")
    return render.render(project)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_stack_renders_objects_the_api_schemas_accept(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "a-password")
    project = config.load([str(ROOT / "stack" / "compose.yaml")], env_name=env)
    rendered = render.render(project, render.Options(registry="registry.example:5000"))
    _valid(rendered.all())
    for document in rendered.all():
        for pod in [document["spec"]["template"]["spec"]] if "template" in document.get("spec", {}) else []:
            assert all(c["image"].startswith("registry.example:5000/stack-") for c in pod["containers"])


def test_the_local_environment_is_refused_for_its_bind_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "a-password")
    project = config.load([str(ROOT / "stack" / "compose.yaml")], env_name="local")
    with pytest.raises(ConfigError) as refused:
        render.render(project)
    problems = [str(p) for p in refused.value.problems]
    assert len(problems) == 3 and all("bind mount of the host path" in p for p in problems)


def test_production_kinds_per_service(production: render.Rendered) -> None:
    objects = production.all()
    assert _find(objects, "StatefulSet", "db")["spec"]["serviceName"] == "db-ready"
    assert production.jobs["migrate"].startswith("migrate-")
    assert _find(objects, "Job", production.jobs["migrate"])["spec"]["backoffLimit"] == 0
    assert _find(objects, "Deployment", "proxy")
    # frontend-build only fills the volume the proxy reads: an init container of the proxy, no Job, no claim
    assert not [o for o in objects if o["metadata"]["name"].startswith("frontend-build") and o["kind"] != "ConfigMap"]
    proxy = _pod(_find(objects, "Deployment", "proxy"))
    assert [c["name"] for c in proxy["initContainers"]] == ["wait-for-backend", "frontend-build"]
    assert {"name": "frontend-dist", "emptyDir": {}} in proxy["volumes"]
    assert production.layers == (("db",), ("migrate",), ("backend",), ("proxy",))


def test_the_database_keeps_its_data_in_a_claim(production: render.Rendered) -> None:
    db = _find(production.all(), "StatefulSet", "db")
    (claim,) = db["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "db" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mount = next(m for m in _pod(db)["containers"][0]["volumeMounts"] if m["name"] == "db")
    assert mount["mountPath"] == "/var/lib/postgresql/data"
    assert _pod(db)["securityContext"]["fsGroup"] == 10004  # the claim is writable by the postgres user


def test_only_the_backend_and_migrate_reach_the_database(production: render.Rendered) -> None:
    policy = _find(production.all(), "NetworkPolicy", "db")["spec"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchExpressions"][0]["values"] == ["backend", "migrate"]
    # the internal `data` network: no route out, only its members and the cluster's DNS
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert [e.get("ports", [{}])[0].get("port") for e in policy["egress"]] == [53, None]
    backend = _find(production.all(), "NetworkPolicy", "backend")["spec"]
    assert "Egress" not in backend["policyTypes"]  # the backend is on `edge` too


def test_only_the_proxy_is_the_entry_point(production: render.Rendered) -> None:
    objects = production.all()
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Ingress"] == ["proxy"]
    ingress = _find(objects, "Ingress", "proxy")["spec"]["rules"][0]["http"]["paths"][0]
    assert ingress["backend"]["service"] == {"name": "proxy", "port": {"number": 8082}}
    assert all(o["spec"]["type"] == "ClusterIP" for o in objects if o["kind"] == "Service" and "type" in o["spec"])
    # others reach what their environment names: backend:8000 (the proxy), db:5432 (DATABASE_URL)
    assert _find(objects, "Service", "backend")["spec"]["ports"][0]["port"] == 8000
    assert _find(objects, "Service", "db")["spec"]["ports"][0]["port"] == 5432
    proxy_policy = _find(objects, "NetworkPolicy", "proxy")["spec"]["ingress"]
    assert {"ports": [{"port": 8082, "protocol": "TCP"}]} in proxy_policy  # from anywhere, on that port only


def test_probes_hardening_and_resources_of_the_database(production: render.Rendered) -> None:
    (db,) = _pod(_find(production.all(), "StatefulSet", "db"))["containers"]
    assert db["readinessProbe"] == {
        "exec": {"command": ["python3", "postgres_service.py", "check"]},
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert db["livenessProbe"] == db["readinessProbe"]
    # start_period 60s polled every start_interval (200ms: one second, the probe's least), then the retries
    assert db["startupProbe"]["periodSeconds"] == 1 and db["startupProbe"]["failureThreshold"] == 63
    assert db["securityContext"] == {
        "runAsUser": 10004,
        "runAsNonRoot": True,
        "runAsGroup": 10004,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert db["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "256Mi"}}
    assert db["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "-c", "kill -INT 1"]  # stop_signal SIGINT
    tmp = next(m for m in db["volumeMounts"] if m["mountPath"] == "/tmp")["name"]
    volumes = {v["name"]: v for v in _pod(_find(production.all(), "StatefulSet", "db"))["volumes"]}
    assert volumes[tmp]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Mi"}


def test_the_password_is_only_in_secrets(production: render.Rendered) -> None:
    password = PASSWORD
    for document in production.all():
        if password in str(document):
            assert document["kind"] == "Secret", document["metadata"]["name"]
    backend_secret = _find(production.all(), "Secret", "backend-env")["stringData"]
    assert list(backend_secret) == ["DATABASE_URL"]  # it holds the password
    assert _find(production.all(), "ConfigMap", "backend-env")["data"]["BACKEND_PORT"] == "8000"
    (backend,) = _pod(_find(production.all(), render_kind(production, "backend"), "backend"))["containers"]
    assert backend["envFrom"] == [{"configMapRef": {"name": "backend-env"}}, {"secretRef": {"name": "backend-env"}}]


def render_kind(rendered: render.Rendered, service: str) -> str:
    return {"deployment": "Deployment", "statefulset": "StatefulSet"}[rendered.workloads[service].split("/")[0]]


def test_dependents_wait_for_healthy_dependencies_in_their_own_image(production: render.Rendered) -> None:
    objects = production.all()
    job = _pod(_find(objects, "Job", production.jobs["migrate"]))
    (wait,) = job["initContainers"]
    assert wait["image"] == job["containers"][0]["image"] == "stack-backend"
    assert "getent hosts db-ready" in wait["command"][-1]
    ready = _find(objects, "Service", "db-ready")["spec"]
    assert ready["clusterIP"] == "None" and ready["publishNotReadyAddresses"] is False
    assert wait["securityContext"] == job["containers"][0]["securityContext"]


# --- small files ------------------------------------------------------------------------------------------

SMALL = """
name: demo
services:
  web:
    image: example/web:1
    ports: ["8080:80"]
    depends_on:
      api: {condition: service_healthy}
  api:
    image: example/api:1
    expose: ["9000"]
    user: "1000"
    read_only: true
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
    security_opt: [no-new-privileges]
    tmpfs: ["/run"]
    secrets: [token]
    configs: [{source: settings, target: /etc/api.toml}]
    environment:
      API_TOKEN_FILE: /run/secrets/token
      MODE: fast
    healthcheck:
      test: curl -fs http://localhost:9000/ || exit 1
      interval: 3s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 3
      update_config: {order: start-first}
      resources:
        limits: {cpus: "0.25", memory: 100M}
secrets:
  token: {file: ./token.txt}
configs:
  settings: {content: "mode = 'fast'"}
"""


def test_small_file_mappings(tmp_path: Path) -> None:
    project = _project(tmp_path, SMALL, {"token.txt": "s3cret-token\n"})
    rendered = render.render(project, render.Options(entry="loadbalancer"))
    objects = rendered.all()
    _valid(objects)
    api = _find(objects, "Deployment", "api")
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    (container,) = _pod(api)["containers"]
    assert container["readinessProbe"]["exec"]["command"] == [
        "/bin/sh",
        "-c",
        "curl -fs http://localhost:9000/ || exit 1",
    ]
    assert "startupProbe" not in container  # no start_period
    assert container["readinessProbe"]["periodSeconds"] == 3 and container["readinessProbe"]["failureThreshold"] == 2
    assert container["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert container["securityContext"]["runAsUser"] == 1000 and container["securityContext"]["runAsNonRoot"]
    assert container["resources"] == {"limits": {"cpu": "250m", "memory": "100Mi"}}  # Docker's M is MiB
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/run/secrets/token"]["subPath"] == "content" and mounts["/etc/api.toml"]["readOnly"]
    assert _find(objects, "Secret", "token")["data"] == {"content": "czNjcmV0LXRva2VuCg=="}
    assert _find(objects, "ConfigMap", "settings")["data"] == {"content": "mode = 'fast'"}
    assert "s3cret-token" not in str([o for o in objects if o["kind"] != "Secret"])
    # the published port: a LoadBalancer on the published number, to the container's
    web = _find(objects, "Service", "web")["spec"]
    assert web["type"] == "LoadBalancer" and web["ports"][0]["port"] == 8080 and web["ports"][0]["targetPort"] == 80
    assert not [o for o in objects if o["kind"] == "Ingress"]
    assert _find(objects, "Service", "api")["spec"]["ports"][0]["port"] == 9000
    assert _pod(_find(objects, "Deployment", "web"))["initContainers"][0]["name"] == "wait-for-api"
    assert rendered.layers == (("api",), ("web",))


def test_a_changed_one_shot_is_a_new_job(tmp_path: Path) -> None:
    text = """
    services:
      setup: {image: tool, command: ["migrate", "VERSION"], restart: "no"}
      app: {image: app, depends_on: {setup: {condition: service_completed_successfully}}}
    """
    first = render.render(_project(tmp_path, text.replace("VERSION", "1")))
    second = render.render(_project(tmp_path, text.replace("VERSION", "2")))
    assert first.jobs["setup"] != second.jobs["setup"]
    _valid(first.all())
    app = _pod(_find(first.all(), "Deployment", "app"))
    assert "initContainers" not in app  # a Job's completion is the apply order's (apply.sh), not a pod's
    script = write.files(first)["apply.sh"]
    assert script.index(f"wait_job {first.jobs['setup']}") < script.index("k apply -f 02-app.yaml")


def test_a_shared_volume_is_one_claim_read_write_many(tmp_path: Path) -> None:
    rendered = render.render(
        _project(
            tmp_path,
            """
            services:
              a: {image: a, volumes: ["files:/files"]}
              b: {image: b, volumes: ["files:/files:ro"]}
            volumes: {files: {}}
            """,
        )
    )
    objects = rendered.all()
    _valid(objects)
    claim = _find(objects, "PersistentVolumeClaim", "files")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert any("ReadWriteMany" in w for w in rendered.warnings)
    assert {"name": "files", "persistentVolumeClaim": {"claimName": "files"}} in _pod(
        _find(objects, "Deployment", "a")
    )["volumes"]


def test_what_cannot_map_is_refused_naming_service_and_key(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        """
        services:
          a: {image: a, privileged: true, volumes: ["./here:/data"]}
          b: {image: b, network_mode: host}
          c: {image: c, user: app, init: true}
        """,
    )
    with pytest.raises(ConfigError) as refused:
        render.render(project)
    problems = [str(p) for p in refused.value.problems]
    assert any("services.a.privileged" in p for p in problems)
    assert any("services.a.volumes" in p and "bind mount" in p and "Fix:" in p for p in problems)
    assert any("services.b.network_mode" in p for p in problems)
    assert not any("services.c" in p for p in problems)  # only warned


def test_warnings_name_the_service_and_key(tmp_path: Path) -> None:
    rendered = render.render(_project(tmp_path, "services:\n  c: {image: c, user: app, init: true}\n"))
    assert any(w.startswith("services.c.user:") for w in rendered.warnings)
    assert any(w.startswith("services.c.init:") for w in rendered.warnings)
    _valid(rendered.all())


# --- files and the command -------------------------------------------------------------------------------


def test_written_files_by_layer_and_the_apply_script(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    project = _project(tmp_path / "p", SMALL, {"token.txt": "t\n"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "09-gone.yaml").write_text(f"{write.HEADER}\n---\n")  # an earlier render's: removed
    (out / "notes.txt").write_text("mine")  # not ours: kept
    names = sorted(p.name for p in write.write(render.render(project), out))
    assert names == ["00-project.yaml", "01-api.yaml", "02-web.yaml", "apply.sh"]
    assert sorted(p.name for p in out.iterdir()) == [*names, "notes.txt"]
    assert (out / "00-project.yaml").stat().st_mode & 0o777 == 0o600  # it holds a Secret
    documents = [d for d in YAML(typ="safe").load_all((out / "01-api.yaml").read_text()) if d]
    assert {d["kind"] for d in documents} == {"ConfigMap", "Secret", "Deployment", "Service", "NetworkPolicy"}
    subprocess.run(["sh", "-n", str(out / "apply.sh")], check=True)
    script = (out / "apply.sh").read_text()
    assert script.index("01-api.yaml") < script.index("rollout status deployment/api") < script.index("02-web.yaml")


def test_the_command_prints_to_stdout_and_refuses_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: a, expose: ['80']}\n")
    with pytest.raises(SystemExit) as done:
        main(["-f", str(tmp_path / "compose.yaml"), "render", "kubernetes", "--registry", "reg.local:5000"])
    assert done.value.code == 0
    documents = [d for d in YAML(typ="safe").load_all(capsys.readouterr().out) if d]
    assert (
        _find(documents, "Deployment", "a")["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.local:5000/a"
    )
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: a, network_mode: host}\n")
    with pytest.raises(SystemExit) as done:
        main(["-f", str(tmp_path / "compose.yaml"), "render", "kubernetes", "-o", str(tmp_path / "out")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "compose.yaml:2 (services.a.network_mode)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_one_shots_jobs_and_folded_init_containers(tmp_path: Path) -> None:
    rendered = render.render(
        _project(
            tmp_path,
            """
            services:
              fill: {image: tool, stop_signal: SIGINT, volumes: ["out:/out"], network_mode: none}
              seed: {image: tool, deploy: {restart_policy: {condition: none}}}
              worker:
                image: worker
                healthcheck: {test: ["CMD", "true"], interval: 2s}
              web:
                image: web
                volumes: ["out:/srv:ro"]
                depends_on:
                  fill: {condition: service_completed_successfully}
                  worker: {condition: service_healthy}
            volumes: {out: {}}
            """,
        )
    )
    objects = rendered.all()
    _valid(objects)
    assert set(rendered.jobs) == {"seed"}  # fill is folded into web; seed is never restarted
    web = _pod(_find(objects, "Deployment", "web"))
    fill = next(c for c in web["initContainers"] if c["name"] == "fill")
    assert "lifecycle" not in fill and "readinessProbe" not in fill  # an init container may have neither
    assert {"name": "out", "emptyDir": {}} in web["volumes"]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    ready = _find(objects, "Service", "worker-ready")["spec"]
    assert "ports" not in ready and ready["clusterIP"] == "None"  # no port known: headless all the same
    assert ("Service", "worker") not in _kinds(objects)


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "differential" / "corpus").glob("*.yaml")), ids=str)
def test_every_file_of_the_differential_corpus_renders_or_is_refused(path: Path) -> None:
    try:
        project = config.load([str(path)], env={"PATH": os.environ.get("PATH", ""), "SET": "x"})
        rendered = render.render(project)
    except ConfigError as refused:
        assert all(p.key for p in refused.problems)  # each names the key at fault
        return
    _valid(rendered.all())


def test_service_level_limits_groups_and_unmapped_keys(tmp_path: Path) -> None:
    rendered = render.render(
        _project(
            tmp_path,
            """
            services:
              a: {image: a, mem_limit: 1g, mem_reservation: 256m, cpus: 1.5, group_add: ["44"], ulimits: {nofile: 1024}}
            """,
        )
    )
    _valid(rendered.all())
    pod = _pod(_find(rendered.all(), "Deployment", "a"))
    assert pod["containers"][0]["resources"] == {
        "limits": {"memory": "1Gi", "cpu": "1500m"},
        "requests": {"memory": "256Mi"},
    }
    assert pod["securityContext"]["supplementalGroups"] == [44]
    assert "services.a.ulimits: dropped: no Kubernetes mapping" in rendered.warnings
