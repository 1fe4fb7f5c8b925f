"""Dependencies without rebuilds, planned with fakes: which manifest changes concern which service, debouncing, one
install at a time per service, and no restart unless the install succeeded (and installed something); the
configuration's refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from unistack.config import load
from unistack.config.manifests import runtime_problems
from unistack.config.model import DependencySpec, Manifest, Project, Service, replace
from unistack.engine.events import Event
from unistack.engine.manifests import QUIET, ManifestFollower, installed_summary, owners
from unistack.engine.supervisor import Engine
from unistack.errors import ConfigError
from unistack.runtimes.base import Handle, ProbeResult

from .fakes import FakeClock, FakeRuntime, project, service

REQUIREMENTS = Path("/p/app/requirements.txt")
LOCK = Path("/p/app/requirements.lock")
PACKAGE = Path("/p/web/package.json")


class InstallingRuntime(FakeRuntime):
    """The scripted runtime, plus installs that take virtual time and answer as scripted."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.results: list[ProbeResult] = []
        self.install_takes = 0.0
        self.running_installs = 0
        self.most_at_once = 0

    def install_step(self, service: Service) -> str | None:
        return "pip install -r requirements.txt"

    async def install(self, project: Project, service: Service, handle: Handle | None) -> ProbeResult:
        self.calls.append(("install", service.name, self.clock.t))
        self.running_installs += 1
        self.most_at_once = max(self.most_at_once, self.running_installs)
        try:
            if self.install_takes:
                await self.clock.sleep(self.install_takes)
        finally:
            self.running_installs -= 1
        return self.results.pop(0) if self.results else ProbeResult(True, 0, "Successfully installed six-1.17.0\n")


def with_manifests(svc: Service, *paths: Path) -> Service:
    return replace(svc, dependencies=DependencySpec(manifests=tuple(Manifest(path=p) for p in paths)))


class Setup:
    def __init__(self, *services: Service) -> None:
        self.clock = FakeClock()
        self.runtime = InstallingRuntime(self.clock)
        self.events: list[Event] = []
        self.engine = Engine(project(*services), self.runtime, clock=self.clock, on_event=self.events.append)
        self.files: dict[Path, str] = {}
        self.lock = asyncio.Lock()
        self.follower = ManifestFollower(
            self.engine,
            fingerprint=self.files.get,
            exclusive=lambda: self.lock,
            on_event=self.events.append,
            clock=self.clock,
        )

    async def up(self) -> None:
        await self.engine.up()
        await self.clock.run_until(lambda: all(st.state == "running" for st in self.engine.status.values()))
        self.follower.follow()

    def save(self, path: Path, text: str) -> None:
        self.files[path] = text
        self.follower.changed([path])

    async def settle(self) -> None:
        await self.clock.run_until(lambda: not self.follower.busy())
        await self.clock.idle()

    def actions(self, name: str) -> list[str]:
        return [action for action, svc, _ in self.runtime.calls if svc == name and action != "prepare"]

    def messages(self, kind: str) -> list[str]:
        return [e.message for e in self.events if e.kind == kind]


@pytest.fixture
def two() -> Setup:
    setup = Setup(with_manifests(service("app"), REQUIREMENTS, LOCK), with_manifests(service("web"), PACKAGE))
    setup.files.update({REQUIREMENTS: "flask", LOCK: "flask==3", PACKAGE: "{}"})
    return setup


def test_each_manifest_maps_to_the_services_that_declare_it() -> None:
    shared = Path("/p/shared/requirements.txt")
    proj = project(
        with_manifests(service("app"), REQUIREMENTS, shared),
        with_manifests(service("worker"), shared),
        service("db"),
    )
    assert owners(proj) == {REQUIREMENTS: ("app",), shared: ("app", "worker")}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Collecting six\nSuccessfully installed httpx-sse-0.4.0 six-1.17.0\n",
            (True, "installed httpx-sse 0.4.0, six 1.17.0"),
        ),
        ("\nadded 2 packages, and audited 152 packages in 3s\n", (True, "added 2 packages")),
        (
            "added 1 package, removed 2 packages, changed 1 package in 2s\n",
            (True, "added 1 package, removed 2 packages, changed 1 package"),
        ),
        ("Requirement already satisfied: six in ./.venv\n", (False, "nothing new to install")),
        ("up to date, audited 152 packages in 900ms\n", (False, "nothing new to install")),
        ("[ensure_node] frontend/node_modules is up to date with package.json\n", (False, "nothing new to install")),
        ("done\n", (True, "installed")),
    ],
)
def test_what_an_install_installed_in_one_line(output: str, expected: tuple[bool, str]) -> None:
    assert installed_summary(output) == expected


async def test_a_change_installs_into_the_running_service_then_restarts_it(two: Setup) -> None:
    await two.up()
    before = two.engine.status["app"].handle
    two.save(REQUIREMENTS, "flask\nsix")
    await two.settle()
    assert two.actions("app") == ["start", "install", "stop", "start"]
    assert two.actions("web") == ["start"]  # another service's manifests are left alone
    assert two.engine.status["app"].handle is not before
    assert two.messages("install")[-1] == "app: requirements.txt changed; installed six 1.17.0 (0.0s); restarting"


async def test_changes_close_together_are_one_install_after_a_quiet_moment(two: Setup) -> None:
    await two.up()
    began = two.clock.t
    two.save(REQUIREMENTS, "flask\nsix")
    await two.clock.advance(QUIET / 2)
    two.save(LOCK, "flask==3\nsix==1.17")
    await two.settle()
    installs = [t for action, svc, t in two.runtime.calls if action == "install"]
    assert installs == [pytest.approx(began + QUIET / 2 + QUIET)]
    assert two.messages("install")[0].startswith("app: requirements.txt, requirements.lock changed; installing")


async def test_a_failed_install_keeps_the_service_running_as_it_was(two: Setup) -> None:
    await two.up()
    before = two.engine.status["app"].handle
    two.runtime.results = [ProbeResult(False, 1, "Collecting nope\nERROR: No matching distribution found for nope\n")]
    two.save(REQUIREMENTS, "flask\nnope")
    await two.settle()
    assert two.actions("app") == ["start", "install"]  # no stop, no start
    assert two.engine.status["app"].handle is before and two.engine.status["app"].state == "running"
    assert two.messages("error") == [
        "app: requirements.txt changed; the install failed (exit code 1): ERROR: No matching distribution found for "
        "nope; app keeps running as it was: fix requirements.txt and save again (`unistack logs app` shows the whole "
        "output)"
    ]
    two.save(REQUIREMENTS, "flask\nnope")  # saved again unchanged: not tried again
    await two.settle()
    assert two.actions("app") == ["start", "install"]
    two.save(REQUIREMENTS, "flask\nsix")  # fixed: installed, then restarted
    await two.settle()
    assert two.actions("app") == ["start", "install", "install", "stop", "start"]


async def test_an_install_past_its_timeout_is_stopped_and_nothing_restarts(two: Setup) -> None:
    await two.up()
    two.runtime.install_takes = 700.0  # the default timeout is 600 s
    two.save(REQUIREMENTS, "flask\nsix")
    await two.settle()
    assert two.actions("app") == ["start", "install"]
    assert "the install failed: the install took longer than 600s and was stopped" in two.messages("error")[0]


async def test_one_install_at_a_time_and_a_change_meanwhile_makes_one_more(two: Setup) -> None:
    await two.up()
    two.runtime.install_takes = 5.0
    two.save(REQUIREMENTS, "flask\nsix")
    await two.clock.advance(QUIET + 1.0)  # the install runs
    two.save(REQUIREMENTS, "flask\nsix\nhttpx")
    await two.clock.advance(1.0)
    two.save(REQUIREMENTS, "flask\nsix\nhttpx-sse")
    await two.settle()
    assert two.runtime.most_at_once == 1
    assert two.actions("app") == ["start", "install", "stop", "start", "install", "stop", "start"]


async def test_an_unchanged_save_or_another_file_sets_off_nothing(two: Setup) -> None:
    await two.up()
    two.save(REQUIREMENTS, "flask")  # the same content (a touch, a save without an edit)
    two.follower.changed([Path("/p/app/main.py")])
    await two.settle()
    assert two.actions("app") == ["start"]
    assert two.events[-1].kind == "started"


async def test_an_install_that_installed_nothing_restarts_nothing(two: Setup) -> None:
    await two.up()
    two.runtime.results = [ProbeResult(True, 0, "Requirement already satisfied: flask\n")]
    two.save(REQUIREMENTS, "flask  # pinned later")
    await two.settle()
    assert two.actions("app") == ["start", "install"]
    assert two.messages("install")[-1] == "app: requirements.txt changed; nothing new to install; app keeps running"


async def test_a_stopped_service_is_not_installed_into(two: Setup) -> None:
    await two.up()
    await two.engine.stop(["app"])
    two.save(REQUIREMENTS, "flask\nsix")
    await two.settle()
    assert two.actions("app") == ["start", "stop"]
    assert two.messages("install") == ["app: requirements.txt changed; app is not running: its next start installs it"]


async def test_close_stops_an_install_in_progress_and_restarts_nothing(two: Setup) -> None:
    await two.up()
    two.runtime.install_takes = 30.0
    two.save(REQUIREMENTS, "flask\nsix")
    await two.clock.advance(QUIET + 1.0)
    assert two.runtime.running_installs == 1
    await two.follower.close()
    assert two.runtime.running_installs == 0
    assert two.actions("app") == ["start", "install"]


# ------------------------------------------------------------------------- the configuration


def compose(tmp_path: Path, text: str, env_name: str = "local") -> Project:
    (tmp_path / "compose.yaml").write_text(text)
    (tmp_path / f"compose.{env_name}.yaml").write_text("{}\n")
    return load([tmp_path / "compose.yaml"], env={}, env_name=env_name, cwd=tmp_path)


SERVICE = """\
services:
  app:
    image: app
    x-unistack:
      process: {command: [python, app.py], setup: [python, install.py]}
      dependencies:
        manifests: [./requirements.txt, {path: ./package.json, target: /app/package.json}]
        install: npm install
        timeout: 2m
"""


def test_the_shape_paths_from_the_compose_file_targets_in_the_container(tmp_path: Path) -> None:
    deps = compose(tmp_path, SERVICE).services["app"].dependencies
    assert deps == DependencySpec(
        manifests=(
            Manifest(path=tmp_path / "requirements.txt"),
            Manifest(path=tmp_path / "package.json", target="/app/package.json"),
        ),
        install=("/bin/sh", "-c", "npm install"),
        timeout=120.0,
    )


def test_every_mistake_is_named_with_its_line_and_fix(tmp_path: Path) -> None:
    text = """\
services:
  app:
    image: app
    x-unistack:
      dependencies:
        manifests: [{path: ./a.txt, target: app/a.txt}, 3]
        instal: [npm, install]
        timeout: soon
"""
    with pytest.raises(ConfigError) as caught:
        compose(tmp_path, text)
    messages = "\n".join(str(p) for p in caught.value.problems)
    assert "target 'app/a.txt' is not an absolute path" in messages
    assert "a manifest is a file path, or a mapping with path (and target)" in messages
    assert "unknown x-unistack.dependencies key 'instal'" in messages and "did you mean 'install'?" in messages
    assert "'soon' is not a duration" in messages
    assert all(p.line for p in caught.value.problems)


def test_production_refuses_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        compose(tmp_path, SERVICE, env_name="production")
    [problem] = caught.value.problems
    assert problem.line == 6 and "never changes a service under its feet" in problem.message
    assert "compose.local.yaml" in (problem.fix or "")


def test_each_runtime_says_what_it_lacks(tmp_path: Path) -> None:
    text = """\
services:
  app:
    image: app
    x-unistack:
      process: {command: [python, app.py]}
      dependencies: {manifests: [./requirements.txt]}
"""
    proj = compose(tmp_path, text)
    [host] = runtime_problems(proj, containers=False)
    assert "nothing installs them as a host process" in host.message and "setup" in (host.fix or "")
    containers = runtime_problems(proj, containers=True)
    assert [p.key for p in containers] == [
        "services.app.x-unistack.dependencies.install",
        "services.app.x-unistack.dependencies.manifests[0]",
    ]
    assert runtime_problems(compose(tmp_path, SERVICE), containers=False) == []
