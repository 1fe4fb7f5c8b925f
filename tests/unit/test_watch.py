"""develop.watch's pure parts: rules, ignore patterns, the plan for a batch, debouncing, what to watch, owners."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from unistack import config, watch
from unistack.cli import main
from unistack.config.model import Project
from unistack.errors import ConfigError, NotSupported
from unistack.runtimes.docker.filecopy import parse_user
from unistack.watch import Debouncer, FileSync, Patterns, Plan, Roots, WatchRule

ROOT = Path("/p")

COMPOSE = """
services:
  db:
    image: postgres
    develop:
      watch:
        - {action: sync+restart, path: ./db/conf, target: /etc/db}
  backend:
    build: ./backend
    depends_on: [db]
    volumes: ["./backend/app:/app/app:ro"]
    develop:
      watch:
        - {action: sync, path: ./backend/static, target: /app/static, ignore: ["drafts/", "*.tmp"]}
        - {action: sync+restart, path: ./backend/server.py, target: /app/server.py}
        - {action: rebuild, path: ./backend/pyproject.toml}
        - {action: sync, path: ./backend/app, target: /app/app}
  frontend:
    build: {context: ./frontend, dockerfile: web.Dockerfile}
    develop:
      watch:
        - action: sync
          path: ./frontend/src
          target: /app/src
          include: ["*.ts", "lib/"]
"""


def load(tmp_path: Path, text: str = COMPOSE) -> Project:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return config.load([str(tmp_path / "compose.yaml")], env={}, project_name="demo")


def rule(
    action: watch.Action,
    path: str,
    target: str | None = None,
    *,
    ignore: Sequence[str] = (),
    service: str = "app",
    include: Patterns | None = None,
    dockerignore: Patterns | None = None,
    initial_sync: bool = False,
) -> WatchRule:
    where = ROOT / path
    return WatchRule(service, action, where, target, Patterns.parse(where, ignore), include, dockerignore, initial_sync)


def changes(*paths: str, deleted: tuple[str, ...] = ()) -> dict[Path, bool]:
    return {**{ROOT / p: False for p in paths}, **{ROOT / p: True for p in deleted}}


# ----------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("lines", "path", "ignored"),
    [
        (["node_modules"], "node_modules/pkg/index.js", True),  # a parent folder matches
        (["node_modules/"], "src/node_modules/x.js", False),  # rooted, as .dockerignore is
        (["**/__pycache__"], "a/b/__pycache__/m.pyc", True),  # any depth, a parent matches
        (["*.log"], "debug.log", True),
        (["*.log"], "logs/debug.log", False),  # * stays in one folder
        (["**", "!app/", "!serve.sh"], "app/main.py", False),  # stack/backend's style: all but what is listed
        (["**", "!app/", "!serve.sh"], "serve.sh", False),
        (["**", "!app/", "!serve.sh"], "README.md", True),
        (["app", "!app/keep.py"], "app/keep.py", False),  # the last matching pattern wins
        (["*", "!x"], "anything", False),  # a bare "*" is dropped, as Compose does
        (["# comment", "", "tmp"], "tmp/a", True),
        (["../outside"], "outside", True),  # "..": cleaned as Docker cleans it
    ],
)
def test_patterns_match_as_dockerignore_does(lines: list[str], path: str, ignored: bool) -> None:
    assert Patterns.parse(ROOT, lines).matches(ROOT / path) is ignored


def test_patterns_never_match_outside_their_root() -> None:
    assert not Patterns.parse(ROOT / "a", ["*"]).matches(ROOT / "b/x")


def test_a_rule_takes_its_path_and_what_is_below_minus_ignored_editor_and_git_files() -> None:
    r = rule("sync", "static", "/srv", ignore=["drafts/", "*.tmp"])
    assert r.takes(ROOT / "static") and r.takes(ROOT / "static/css/site.css")
    assert not r.takes(ROOT / "staticx/a") and not r.takes(ROOT / "other/a")
    assert not r.takes(ROOT / "static/drafts/a.html")  # ignore is relative to the rule's path
    assert not r.takes(ROOT / "static/x.tmp")
    for name in (".index.html.swp", "index.html~", "4913", ".#index.html", "a.css___jb_tmp___"):
        assert not r.takes(ROOT / "static" / name), name
    assert not r.takes(ROOT / "static/.git/HEAD") and not r.takes(ROOT / "static/.idea/x.xml")


def test_include_and_dockerignore_narrow_a_rule() -> None:
    r = rule(
        "sync",
        "web/src",
        "/app/src",
        include=Patterns.parse(ROOT / "web/src", ["*.ts", "lib/"]),
        dockerignore=Patterns.parse(ROOT / "web", ["src/secret.ts"]),
    )
    assert r.takes(ROOT / "web/src/main.ts") and r.takes(ROOT / "web/src/lib/x.js")
    assert not r.takes(ROOT / "web/src/style.css")  # not included
    assert not r.takes(ROOT / "web/src/secret.ts")  # in the build context's .dockerignore


def test_container_paths() -> None:
    assert rule("sync", "static", "/srv/www").container_path(ROOT / "static/a/b.css") == "/srv/www/a/b.css"
    assert rule("sync", "static", "/srv/www/").container_path(ROOT / "static") == "/srv/www"
    assert rule("sync", "conf.ini", "/etc/app.ini").container_path(ROOT / "conf.ini") == "/etc/app.ini"


# ----------------------------------------------------------------- rules from a project


def test_rules_resolve_paths_against_the_project_folder_and_read_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend/.dockerignore").write_text("static/private\n")
    (tmp_path / "frontend").mkdir()
    (tmp_path / "frontend/web.Dockerfile.dockerignore").write_text("src/gen\n")  # the Dockerfile's own first
    (tmp_path / "frontend/.dockerignore").write_text("src\n")
    project = load(tmp_path)
    rules, warnings = watch.load_rules(project)
    by_path = {r.path: r for r in rules}
    static = by_path[tmp_path / "backend/static"]
    assert static.service == "backend" and static.target == "/app/static"
    assert not static.takes(tmp_path / "backend/static/private/a")  # .dockerignore of the build context
    assert by_path[tmp_path / "backend/pyproject.toml"].target is None
    src = by_path[tmp_path / "frontend/src"]
    assert src.takes(tmp_path / "frontend/src/main.ts") and not src.takes(tmp_path / "frontend/src/gen/x.ts")
    assert by_path[tmp_path / "db/conf"].dockerignore is None  # no build: no .dockerignore
    # a sync rule under a bind mount is skipped with a warning, as Compose does
    assert tmp_path / "backend/app" not in by_path
    assert warnings == [
        "backend: ./backend/app is bind-mounted into the container, which sees your changes already; "
        "its sync rule is skipped"
    ]


def test_rules_of_named_services_include_their_dependencies(tmp_path: Path) -> None:
    project = load(tmp_path)
    assert {r.service for r in watch.load_rules(project, ["backend"])[0]} == {"backend", "db"}
    assert {r.service for r in watch.load_rules(project, ["frontend"])[0]} == {"frontend"}


def test_every_bad_rule_is_reported_at_once(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          app:
            image: busybox
            develop:
              watch:
                - {action: sync, path: ./a}
                - {action: rebuild, path: ./c}
                - {action: sync+exec, path: ./d, target: /d, exec: {command: ["true"]}}
                - {action: sync, path: ./e, target: relative/e}
                - {action: sync, path: ./f, target: /f, ignore: "*.tmp"}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        watch.load_rules(project)
    text = [str(p) for p in caught.value.problems]
    assert len(text) == 5, text
    expected = [
        "watch[0]): sync needs a target",
        "watch[1]): service 'app' has no build section, so rebuild cannot build its image",
        "watch[2]): action sync+exec is not supported by unistack watch; use sync+restart.",
        "watch[3]): sync needs a target",
        "watch[4]): ignore must be a list of patterns",
    ]
    for fragment, problem in zip(expected, text, strict=True):
        assert fragment in problem


def test_rules_the_compose_schema_refuses_are_reported_at_once_when_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            """
            services:
              app:
                image: busybox
                develop:
                  watch:
                    - {action: copy, path: ./b, target: /b}
                    - {action: sync+exec, path: ./d, target: /d, exec: {command: [true]}}
                    - {action: sync, path: ./f, target: /f, colour: red}
                    - {action: restart, target: /g}
            """,
        )
    text = [str(p) for p in caught.value.problems]
    expected = [
        "watch[0].action): action must be one of 'rebuild', 'sync', 'restart'",
        "watch[1].exec.command[0]): command[0] must be a string, not true.",
        "watch[2].colour): unknown key 'colour' in watch[2].",
        "watch[3]): watch[3] needs 'path'.",
    ]
    assert len(text) == len(expected), text
    for fragment, problem in zip(expected, text, strict=True):
        assert fragment in problem


# ----------------------------------------------------------------- the plan for one batch


def test_sync_maps_files_to_container_paths_and_deletions() -> None:
    rules = [rule("sync", "static", "/srv/static"), rule("sync", "index.html", "/srv/index.html")]
    result = watch.plan(rules, changes("static/a.css", "index.html", "other.txt", deleted=("static/old.css",)))
    assert [(f.host, f.container, f.deleted) for f in result.sync["app"]] == [
        (ROOT / "index.html", "/srv/index.html", False),
        (ROOT / "static/a.css", "/srv/static/a.css", False),
        (ROOT / "static/old.css", "/srv/static/old.css", True),
    ]
    assert result.restart == () and result.rebuild == ()


def test_deletions_below_a_deleted_folder_fold_into_it() -> None:
    result = watch.plan(
        [rule("sync", "static", "/srv")], changes(deleted=("static/img", "static/img/a.png", "static/img/b/c.png"))
    )
    assert [f.container for f in result.sync["app"]] == ["/srv/img"]


def test_for_one_service_rebuild_wins_over_restart_which_wins_over_sync() -> None:
    rules = [
        rule("sync", "api/static", "/app/static", service="api"),
        rule("sync+restart", "api/server.py", "/app/server.py", service="api"),
        rule("rebuild", "api/pyproject.toml", service="api"),
        rule("sync", "web/public", "/app/public", service="web"),
        rule("sync+restart", "web/vite.config.ts", "/app/vite.config.ts", service="web"),
        rule("sync", "docs/index.md", "/docs/index.md", service="docs"),
        rule("restart", "worker/settings.toml", service="worker"),
    ]
    batch = changes(
        "api/static/a.css",
        "api/server.py",
        "api/pyproject.toml",
        "web/public/logo.svg",
        "web/vite.config.ts",
        "docs/index.md",
        "worker/settings.toml",
    )
    result = watch.plan(rules, batch)
    assert result.rebuild == ("api",)  # its syncs and restart are dropped: the new image has the files
    assert result.restart == ("web", "worker")
    assert {s: [f.container for f in files] for s, files in result.sync.items()} == {
        "web": ["/app/public/logo.svg", "/app/vite.config.ts"],  # synced first, then restarted
        "docs": ["/docs/index.md"],
    }
    # without the rebuild change, api syncs both files and restarts
    result = watch.plan(rules, changes("api/static/a.css", "api/server.py"))
    assert result.restart == ("api",) and [f.container for f in result.sync["api"]] == [
        "/app/server.py",
        "/app/static/a.css",
    ]


def test_ignored_changes_plan_nothing() -> None:
    rules = [rule("sync+restart", "static", "/srv", ignore=["*.tmp"]), rule("rebuild", "Dockerfile")]
    result = watch.plan(rules, changes("static/x.tmp", "static/.x.swp", "elsewhere/Dockerfile"))
    assert not result and result == Plan()


def test_the_last_matching_rule_wins_for_one_container_path() -> None:
    rules = [rule("sync", "site", "/srv/site"), rule("sync", "site/theme", "/srv/theme")]
    result = watch.plan(rules, changes("site/theme/a.css"))
    assert [f.container for f in result.sync["app"]] == ["/srv/site/theme/a.css", "/srv/theme/a.css"]


def test_initial_sync_copies_what_its_rule_takes_without_restart() -> None:
    rules = [
        rule("sync+restart", "static", "/srv", ignore=["*.tmp"], initial_sync=True),
        rule("sync", "other", "/other"),
    ]
    listing = {ROOT / "static": [ROOT / "static/a.css", ROOT / "static/b.tmp", ROOT / "static/sub"]}
    result = watch.initial_plan(rules, lambda path: listing.get(path, []))
    assert [f.container for f in result.sync["app"]] == ["/srv/a.css", "/srv/sub"]
    assert result.restart == ()


def test_tar_entries_bring_the_folders_between_a_rule_and_its_files() -> None:
    r = rule("sync", "static", "/srv/static")
    files = [
        FileSync(r, ROOT / "static/img/icons/a.svg", "/srv/static/img/icons/a.svg", False),
        FileSync(r, ROOT / "static/b.css", "/srv/static/b.css", False),
        FileSync(r, ROOT / "static/gone.css", "/srv/static/gone.css", True),
    ]
    assert watch.tar_entries(files) == [
        ("/srv/static/b.css", ROOT / "static/b.css"),
        ("/srv/static/img", ROOT / "static/img"),
        ("/srv/static/img/icons", ROOT / "static/img/icons"),
        ("/srv/static/img/icons/a.svg", ROOT / "static/img/icons/a.svg"),
    ]
    single = rule("sync", "conf/app.ini", "/etc/app.ini")
    assert watch.tar_entries([FileSync(single, ROOT / "conf/app.ini", "/etc/app.ini", False)]) == [
        ("/etc/app.ini", ROOT / "conf/app.ini")
    ]


# ----------------------------------------------------------------- debouncing and what to watch


def test_a_batch_is_due_after_a_quiet_period() -> None:
    d = Debouncer(quiet=0.3, longest=2.0)
    assert d.wait(0.0) is None
    d.add([ROOT / "a"], 10.0)
    assert d.wait(10.1) == pytest.approx(0.2)
    d.add([ROOT / "a"], 10.2)  # the same file saved again: still busy
    d.add([], 10.4)  # nothing new: no effect
    assert d.wait(10.4) == pytest.approx(0.1)
    d.add([ROOT / "b"], 10.45)
    assert d.wait(10.7) == pytest.approx(0.05)
    assert d.wait(10.75) == 0
    assert d.take() == [ROOT / "a", ROOT / "b"]
    assert d.wait(10.8) is None


def test_a_steady_stream_of_changes_is_still_acted_on() -> None:
    d = Debouncer(quiet=0.3, longest=2.0)
    for step in range(20):
        d.add([ROOT / f"f{step}"], 100.0 + step * 0.1)
    assert d.wait(101.9) == pytest.approx(0.1)  # 2 s after the first change, however busy
    assert d.wait(102.0) == 0 and len(d.take()) == 20


def test_watch_roots_watch_folders_deep_and_single_files_through_their_folder() -> None:
    folders = {ROOT, ROOT / "static", ROOT / "static/css", ROOT / "backend", ROOT / "frontend"}
    rules = [
        rule("sync", "static", "/srv"),
        rule("sync", "static/css", "/css"),  # inside a deep root already
        rule("sync+restart", "backend/server.py", "/app/server.py"),
        rule("rebuild", "backend/pyproject.toml"),
        rule("sync", "frontend/public", "/app/public"),  # missing: its nearest folder, until it appears
        rule("sync", "static/logo.svg", "/logo.svg"),  # a file inside a deep root
    ]
    roots = watch.watch_roots(rules, lambda path: path in folders)
    assert roots == Roots(deep=(ROOT / "static",), flat=(ROOT / "backend", ROOT / "frontend"))


# ----------------------------------------------------------------- owners of synced files


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ("", (0, 0)),
        ("root", (0, 0)),
        ("10001:10001", (10001, 10001)),
        ("10001", (10001, 10001)),  # its account's group
        ("4242", (4242, 0)),  # no account: group 0, as Docker does
        ("app", (10001, 10001)),
        ("app:staff", (10001, 50)),
        ("app:7", (10001, 7)),
        ("nobody-here", None),
        ("app:nogroup-here", None),
    ],
)
def test_the_owner_of_synced_files_is_the_containers_user(user: str, owner: tuple[int, int] | None) -> None:
    passwd = "root:x:0:0:root:/root:/bin/bash\n# note\napp:x:10001:10001::/nonexistent:/usr/sbin/nologin\n"
    group = "root:x:0:\nstaff:x:50:\napp:x:10001:\n"
    assert parse_user(user, passwd, group) == owner


# ----------------------------------------------------------------- the command's refusals


def test_watch_refuses_the_process_runtime(tmp_path: Path) -> None:
    project = load(tmp_path)
    with pytest.raises(NotSupported) as caught:
        watch.run(project, [], "process", print)
    assert caught.value.exit_code == 2
    assert "develop.watch applies to containers; host processes already run your sources" in str(caught.value)


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ("process", "develop.watch applies to containers"),
        ("docker", "demo is not up; run `unistack up -d` first"),
    ],
)
def test_the_watch_command_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runtime: str, message: str
) -> None:
    load(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["-f", str(tmp_path / "compose.yaml"), "-p", "demo", "--runtime", runtime, "watch"])
    assert done.value.code == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------- the stack's own rules


def test_the_stack_local_overlay_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Path(__file__).resolve().parents[2] / "stack"
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    project = config.load([str(stack / "compose.yaml")], env={}, env_name="local")
    rules, warnings = watch.load_rules(project, ["backend", "frontend"])
    # the manifests' rebuild rules are left to the daemon, which installs into the running containers
    assert [w.split(" is one of its x-unistack.dependencies manifests")[0] for w in warnings] == [
        "backend: ./backend/pyproject.toml",
        "frontend: ./frontend/package.json",
        "frontend: ./frontend/package-lock.json",
    ]
    result = watch.plan(
        rules,
        {
            stack / "backend/dev_server.py": False,
            stack / "backend/app/main.py": False,  # bind-mounted: no rule, nothing to do
            stack / "frontend/public/favicon.svg": False,
            stack / "frontend/index.html": False,
        },
    )
    assert {s: [f.container for f in files] for s, files in result.sync.items()} == {
        "backend": ["/app/dev_server.py"],
        "frontend": ["/app/index.html", "/app/public/favicon.svg"],
    }
    assert result.restart == ("backend",) and result.rebuild == ()
    manifests = watch.plan(rules, {stack / "backend/pyproject.toml": False, stack / "frontend/package.json": False})
    assert not manifests
