"""The fast YAML reader against ruamel: whatever it accepts, it must read exactly as ruamel (through yamlfile) does.

The corpus is every YAML-looking string of the test suites, the conformance vectors, the stack's compose files,
a handwritten list of edge cases, texts with anchors, aliases, merge keys and block scalars, and seeded random
mutations of all of them (a character inserted, deleted or replaced, a line re-indented, duplicated, dropped or
joined), so that near-misses of the subset are covered too: for each text, either the fast reader declines (None)
or ruamel reads it without error to the same data (types and key order included) and the same line table.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

import pytest

from unistack.config import yamlfast
from unistack.config.yamlfile import _parse_with_ruamel, parse_yaml
from unistack.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]

EDGE_CASES = [
    "",
    "# only a comment\n",
    "a: 1\n",
    "  a: 1\n  b: 2\n",
    "a:\n- 1\n- 2\nb: 3\n",
    "a:\n  - x\n  -   y\n",
    "a:\n  -\n    b: 1\n  - # c\n    d: 2\n",
    "- a\n",
    "a: b: c\n",
    "a: v:\n",
    "a: -\n",
    "a: - b\n",
    "a  : 1\n",
    "a: 0o17\nb: 012\nc: +5\nd: 1_000\ne: 0\nf: -1\ng: 1.5\nh: .inf\ni: 0x1f\n",
    "null: 1\ntrue: 2\n3: 4\n~: 5\n",
    "a: [1, 2.5, true, null, ~, False, x]\n",
    "a: { }\nb: [ ]\nc: {}\nd: []\n",
    "a: x\n  # indented comment\nb: y\n",
    "a: x y  \n",
    "a: x\n  y\n",
    "a: [x y, z]\n",
    "a: [\"q\", 'r']\n",
    "a: {b: 1, c: [x, y], d: {e: f}}\n",
    "a: [CMD, curl, http://x:80/y]\n",
    "a: [a:b]\nb: [a: b]\nc: {a:b}\nd: [a, b, ]\ne: [a,,b]\nf: [a, [b, c]]\n",
    "a: '#x'\nb: x #\nc: x#y\nd: 'x' #c\ne: \"x\"#c\n",
    "-a: 1\n--b: 2\n",
    'a: "\\x41\\u00e9\\U0001F600\\n\\t\\\\\\"\\/\\ \\0\\N\\_\\L\\P\\e"\n',
    'a: "\\q"\n',
    'a: "x\\\n  y"\n',
    "a: 'it''s'\nb: ''\nc: \"\"\n",
    "a: 'x\n  y'\n",
    "a: &x 1\nb: *x\n",
    "a: !reset []\nb: !override {}\n",
    "a: |\n  text\nb: >-\n  folded\n",
    "a: 1\na: 2\n",
    "'a': 1\n\"a b\": 2\n'c':3\n",
    "a: 1\n---\nb: 2\n",
    "---\na: 1\n",
    "%YAML 1.2\n---\na: 1\n",
    "a:\tb\n",
    "a: b\r\nc: d\r\n",
    "a: 2024-01-01\nb: 22:22\nc: on\nd: yes\ne: 1e3\nf: 10s\ng: 50ms\n",
    "<<: {a: 1}\nb: =\n",
    "a:\n    b: 1\n  c: 2\n",
    "a:\n  b: 1\n   c: 2\n",
    "a:\n  - b: 1\n    c: 2\n  - d\n",
    "a:\n  - b:\n    - x\n",
    "- a: 1\n  b: 2\n",
    "a: [x,\n  y]\n",
    "a: {x: 1,\n  y: 2}\n",
    "a:\n  b:\n  c:\n",
    "a: é ü 日本\n",
    "a: ? b\n",
    "? a\n: b\n",
    "a: @x\nb: `x`\n",
    "a: %x\n",
    "a: [x, 'y' z]\n",
    "a: [x] y\n",
    "a: {b}\n",
    "a: {b: }\n",
    "a: {'b': 1, \"c\": [1, 2]}\n",
    "a: [x #c]\n",
    "key with spaces: value with spaces\n",
    "a/b.c-d_e: x\n",
    "a: x:y\nb: http://h:1/p?q=1#f\n",
    "services:\n  web:\n    x-unistack: {process: {command: [sleep, \"30\"]}}\n    ports: ['8080:80']\n",
    "a:\n  - [1, 2]\n  - {b: c}\n  - 'q'\n",
    "a: ...\nb: ---\n",
    "a: 1 # c: d\n",
    "a # b: c\n",
]


# Anchors, aliases, merge keys and block scalars: what ruamel makes of them, quirks included (an anchored
# boolean is an int; an alias as a sequence item is on its anchor's line; merged keys come after the own keys,
# on their mapping's line, and keep the lines below them), or what the fast reader must decline.
CONSTRUCTS = [
    "a: &x true\nb: *x\nc: &y 5\nd: &z ~\ne: *z\nf: &w \"s\"\ng: &v plain\nh: &u 'q'\ni: &t False\n",
    "a: &m\n  k: 1\n  l:\n    - x\nb: *m\nc:\n  - *m\n  - &s 3\n  - *s\n  - &q\n    z: 1\n  - *q\n",
    "a: &l\n- x\n- y\nb: *l\nc: &f [1, {d: e}]\nd:\n  - *f\n  - &g # comment\n    - z\n  - *g\n",
    "x: &h\n  a: 1\n  b: 2\ny:\n  <<: *h\n  c: 3\n",
    "x: &h\n  a: 1\n  b: 2\ny:\n  c: 3\n  <<: *h\n  a: 9\n",
    "x: &h\n  a: 1\n  b: 2\ny:\n  a: 0\n  b: 0\n  <<: *h # every key overridden\n",
    "x: &h\n  a: 1\n  b: 2\nz: &i\n  b: 5\n  d: 6\ny:\n  <<: [*i, *h]\n  c: 3\nw:\n  <<: [ *h , *i ]\n",
    "x: &h {a: 1, b: [1, 2]}\n<<: *h\nb: 2\n",
    "g: &g {q: 1}\nx: &h\n  a: 1\n  n:\n    <<: *g\n    r: 2\n  <<: *g\ny: *h\nz:\n  <<: *h\nw:\n  - *h\n"
    "  - <<: *h\n    a: 3\n",
    'x-b: &b\n  context: ./b\n  args:\n    BASE: x\nx-url: &url "postgresql://u@h/db"\nservices:\n  m:\n'
    "    build: *b\n    environment:\n      URL: *url\n  n:\n    build: *b\n",
    "x-h: &h\n  cap_drop: [ALL]\n  read_only: true\n  logging:\n    driver: json-file\n    options:\n"
    '      max-size: 10m\nservices:\n  db:\n    <<: *h\n    user: "1:1"\n  web:\n    read_only: false\n    <<: *h\n',
    "a: |\n  x\n  y\n\n\nb: >\n  a\n  b\n\n  c\n   d\n  e\n"
    "c: |-\n  s\n\nd: |+\n  k\n\n\ne: >-\n  f\n  g\nf: >+\n  h\n\n",
    "a:\n  - |\n    x\n     y\n  - >-\n    y\n    z\n  - k: |2\n       q\n    l: >1-\n      r\n  - |+\n    t\n\n",
    "s:\n  b:\n    command:\n      - /bin/sh\n      - -c\n      - |\n"
    '        a &&\n        exec b "$$X"\n    dir: ./f\n',
    "a: | # comment\n  #!/bin/sh\n  echo hi\n\n  # not a comment\nb: 1\n",
    "a: |\n  x\n# a comment ends it\n  \nb: 1\n",
    "a: >\n\n  one\n  two\n\n\n  three\n    more\n  four\n",
    "a: >+\n  x\n    \n  y\n",
    "a: &lit |\n  text\nb: *lit\nc:\n  - *lit\n  - &fold >-\n    folded\n    text\n  - *fold\n",
    "a: |\n  no final newline",
    "a: |-\n  x\n\n\n",
    "a: |+\n  x\n\n\n",
    "a: |\n  x\n  ",
    "a: |\n   \n  x\n",
    "a: |\nb: 1\n",
    "a: |\n",
    "a: |2-\n   x\n",
    "a: |0\n  x\n",
    "a: |x\n  x\n",
    "a: *undefined\n",
    "a:\n  - *undefined\n",
    "a:\n  <<: *undefined\n",
    "a: *later\nb: &later 1\n",
    "a: &x\n  b: *x\n",
    "a: &x 1\nb: &x 2\nc: *x\n",
    "a: &x 1\nb:\n  <<: *x\n",
    "a: &x\n  - b: 1\nc:\n  <<: *x\n",
    "a: &x {b: 1}\nc:\n  <<: *x\n  <<: *x\n",
    "a: &x {b: 1}\nc:\n  <<: {d: 1}\n",
    'a: &x {b: 1}\nc:\n  "<<": *x\n',
    "a: &x\nb: *x\n",
    "&a a: 1\n",
    "a:\n  - &x b: 1\n",
    "a: &x &y 1\n",
    "a: &x *y\n",
    "a: [*x]\n",
    "a: &x1.y-z_ v\nb: *x1.y-z_\n",
    "a: &x:y v\n",
    "a: *x y\n",
]


def _yaml_strings_in(path: Path) -> list[str]:
    """String constants of a Python file that look like YAML documents (several lines with a colon)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text.count("\n") >= 1 and ":" in text:
                out.append(text)
    return out


def _corpus() -> list[str]:
    texts = [*EDGE_CASES, *CONSTRUCTS]
    for folder in ("tests/unit/config", "tests/integration", "tests/unit"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name != Path(__file__).name:
                texts += _yaml_strings_in(path)
    for path in sorted((ROOT / "stack").glob("compose*.yaml")):
        texts.append(path.read_text())
    conformance = ROOT.parent / "shared" / "conformance"
    for name in ("merge_cases.json", "spec_merge_examples.json"):
        if (conformance / name).is_file():
            import json

            for case in json.loads((conformance / name).read_text()):
                texts += [v for k, v in case.items() if k in {"base", "override", "expected"} and isinstance(v, str)]
    texts.append(_bench_like(12))
    return list(dict.fromkeys(texts))


def _bench_like(count: int) -> str:
    """A compose file shaped like bench/startup.py's (the case the fast reader exists for)."""
    parts = ["services:\n"]
    for i in range(count):
        parts.append(
            f"  s{i}:\n"
            "    x-unistack:\n"
            "      process:\n"
            '        command: ["/usr/bin/python3", "-S", "/srv/ready_service.py"]\n'
            "    environment:\n"
            '      READY_AFTER: "1"\n'
            f'      MARKER: "/tmp/markers/s{i}.ready"\n'
            "    stop_grace_period: 2s\n"
            "    healthcheck:\n"
            '      test: ["CMD-SHELL", "test -f \\"$$MARKER\\""]\n'
            "      interval: 60s\n"
            "      retries: 3\n"
            "      start_interval: 50ms\n"
        )
        if i:
            parts.append(f"    depends_on:\n      s{i - 1}:\n        condition: service_healthy\n")
    return "".join(parts)


def _typed(value: Any) -> Any:
    """Data with the type of every scalar and the order of every mapping's keys spelled out (1 == True in Python)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}, "dict", [(type(k).__name__, k) for k in value]
    if isinstance(value, list):
        return [_typed(v) for v in value], "list"
    return type(value).__name__, value


def _check(text: str) -> bool:
    """Assert the invariant for one text; True when the fast reader accepted it."""
    fast = yamlfast.parse(text)
    if fast is None:
        return False
    try:
        slow = _parse_with_ruamel(text, None)
    except ConfigError as exc:
        pytest.fail(f"the fast reader accepted a text ruamel refuses ({exc}):\n{text}")
    data, lines = fast
    assert _typed(data) == _typed(slow.data), text
    assert lines == slow.lines, text
    return True


def _mutations(text: str, rng: random.Random, count: int) -> list[str]:
    lines = text.split("\n")
    alphabet = [*" :-#'\"[]{},!&*|>?%@`\\x1.\t", "- ", ": ", " #", "  "]
    out = []
    for _ in range(count):
        new = list(lines)
        i = rng.randrange(len(new))
        line = new[i]
        kind = rng.randrange(8)
        pos = rng.randrange(len(line) + 1)
        if kind == 0:
            new[i] = line[:pos] + rng.choice(alphabet) + line[pos:]
        elif kind == 1 and line:
            new[i] = line[:pos] + line[pos + 1 :]
        elif kind == 2 and line:
            new[i] = line[:pos] + rng.choice(alphabet) + line[pos + 1 :]
        elif kind == 3:
            new[i] = " " * rng.choice([1, 2]) + line
        elif kind == 4:
            new[i] = line[rng.choice([1, 2]) :] if line.startswith("  ") else line
        elif kind == 5:
            new.insert(i, line)
        elif kind == 6:
            del new[i]
        elif i + 1 < len(new):
            new[i : i + 2] = [new[i] + " " + new[i + 1].lstrip()]
        out.append("\n".join(new))
    return out


def test_the_fast_reader_reads_what_ruamel_reads() -> None:
    corpus = _corpus()
    accepted = sum(_check(text) for text in corpus)
    assert accepted > len(corpus) // 3  # the subset covers most of the suites' documents


def test_mutations_are_read_as_ruamel_reads_them_or_declined() -> None:
    rng = random.Random(20261130)
    corpus = [t for t in _corpus() if t.strip() and len(t) < 4000]
    for text in corpus:
        for mutated in _mutations(text, rng, 6):
            _check(mutated)


def test_anchors_merges_and_block_scalars_are_read_as_ruamel_reads_them_or_declined() -> None:
    accepted = [_check(text) for text in CONSTRUCTS]
    assert sum(accepted) > len(CONSTRUCTS) // 3
    rng = random.Random(20261201)
    for text in CONSTRUCTS:
        for mutated in _mutations(text, rng, 40):
            _check(mutated)
            for twice in _mutations(mutated, rng, 1):
                _check(twice)


def test_an_undefined_alias_is_still_ruamels_error_with_its_line() -> None:
    for text in ("a: 1\nb: *nope\n", "a:\n  - 1\n  - *nope\n", "a: 1\nb:\n  <<: *nope\n"):
        assert yamlfast.parse(text) is None
        with pytest.raises(ConfigError) as caught:
            parse_yaml(text)
        assert "undefined alias" in caught.value.problems[0].message
        assert caught.value.problems[0].line == text.count("\n")


def test_the_stacks_compose_files_take_the_fast_path() -> None:
    base = (ROOT / "stack" / "compose.yaml").read_text()
    production = (ROOT / "stack" / "compose.production.yaml").read_text()
    assert yamlfast.parse(base) is not None
    assert yamlfast.parse(production) is not None
    assert _check(base) and _check(production)
    rows = base.split("\n")
    document = parse_yaml(base)
    migrate = document.data["services"]["migrate"]
    assert migrate["build"]["args"] == {"BASE": "${UNISTACK_BASE_IMAGE:-debian:bookworm-slim}"}
    assert document.lines[("services", "migrate", "build", "context")] == rows.index("  context: ./backend") + 1
    assert migrate["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    command = document.data["services"]["frontend-build"]["x-unistack"]["process"]["command"]
    assert command[2].endswith('tools/precompress.mjs "$$FRONTEND_DIST"\n')
    assert command[2].count("\n") == 2
    rows = production.split("\n")
    document = parse_yaml(production)
    db = document.data["services"]["db"]
    assert list(db)[-4:] == ["cap_drop", "security_opt", "read_only", "logging"]  # merged: after the own keys
    assert db["restart"] == "unless-stopped" and db["read_only"] is True
    assert document.lines[("services", "db", "cap_drop")] == rows.index("  db:") + 1
    assert document.lines[("services", "db", "logging", "driver")] == rows.index("    driver: json-file") + 1


def test_compose_files_shaped_like_the_benchmarks_take_the_fast_path() -> None:
    text = _bench_like(30)
    assert yamlfast.parse(text) is not None
    document = parse_yaml(text)
    assert document.data["services"]["s3"]["depends_on"] == {"s2": {"condition": "service_healthy"}}
    line = text.split("\n").index("  s3:") + 1
    assert document.lines[("services", "s3")] == line
    assert document.lines[("services", "s3", "healthcheck", "test", 1)] == line + 9


@pytest.mark.parametrize(
    ("text", "line"),
    [("services:\n  a:\n    image: x\n   bad: [\n", 4), ("a: 1\na: 2\n", 2), ("a:\n  b: 1\n   c: 2\n", 3)],
)
def test_errors_still_come_from_ruamel_with_their_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text)
    assert caught.value.problems[0].line == line


def test_an_anchored_boolean_stays_a_boolean_on_both_paths() -> None:
    text = "x-flag: &flag true\nservices:\n  a:\n    depends_on:\n      b: {required: *flag}\n  b: {}\n"
    slow = _parse_with_ruamel(text, None).data
    assert slow["x-flag"] is True and slow["services"]["a"]["depends_on"]["b"]["required"] is True
    if (fast := yamlfast.parse(text)) is not None:
        assert _typed(fast[0]) == _typed(slow)
