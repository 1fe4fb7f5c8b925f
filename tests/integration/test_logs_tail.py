"""`logs --tail N` of a running instance is read by its daemon (which has the runtime's driver loaded) and prints
exactly what the CLI reads itself when no daemon runs: the same lines, services in the same order."""

from __future__ import annotations

from tests.integration.conftest import Instance

COMPOSE = """
services:
  one:
    x-unistack:
      process:
        command: ["sh", "-c", "for n in 1 2 3 4 5; do echo one $$n; done; exec sleep 60"]
  two:
    x-unistack:
      process:
        command: ["sh", "-c", "for n in 1 2 3; do echo two $$n; done; exec sleep 60"]
"""


def test_tail_through_the_daemon_and_without_it(instance: Instance) -> None:
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)

    def tail(*args: str) -> list[str]:
        out = instance.run("logs", "--tail", *args, check=True).stdout
        return [" ".join(line.split()) for line in out.splitlines()]  # the names' padding aside

    instance.wait_for(lambda: len(tail("10")) == 8, message="eight lines logged")
    daemon_alive = tail("2")
    assert sorted(daemon_alive) == ["one | one 4", "one | one 5", "two | two 2", "two | two 3"]
    assert tail("1", "two") == ["two | two 3"]
    instance.run("down", check=True)  # the log files stay; no daemon any more: the CLI reads them itself
    assert tail("2") == daemon_alive
