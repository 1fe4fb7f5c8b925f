import pytest

from unistack.config.model import RestartPolicy
from unistack.engine import policy

ALWAYS = RestartPolicy(mode="always")
ON_FAILURE_3 = RestartPolicy(mode="on-failure", max_attempts=3)


@pytest.mark.parametrize(
    ("mode", "max_attempts", "exit_code", "unhealthy", "attempts", "action", "delay"),
    [
        ("no", None, 1, False, 0, "exit", 0.0),
        ("no", None, 0, False, 0, "exit", 0.0),
        ("always", None, 0, False, 0, "restart", 0.0),
        ("always", None, 1, False, 1, "restart", 1.0),
        ("always", None, 1, False, 2, "restart", 2.0),
        ("always", None, 1, False, 5, "restart", 16.0),
        ("always", None, 1, False, 50, "restart", 30.0),  # capped at backoff_max
        ("unless-stopped", None, 0, False, 0, "restart", 0.0),
        ("on-failure", None, 0, False, 0, "exit", 0.0),
        ("on-failure", None, 3, False, 0, "restart", 0.0),
        ("on-failure", None, 0, True, 0, "restart", 0.0),  # unhealthy counts as a failure
        ("on-failure", 3, 1, False, 2, "restart", 2.0),
        ("on-failure", 3, 1, False, 3, "fatal", 0.0),
        ("always", 0, 1, False, 0, "fatal", 0.0),
        ("always", 2, None, False, 2, "fatal", 0.0),  # could not even start
    ],
)
def test_restart_decisions(
    mode: str,
    max_attempts: int | None,
    exit_code: int | None,
    unhealthy: bool,
    attempts: int,
    action: str,
    delay: float,
) -> None:
    p = RestartPolicy(mode=mode, max_attempts=max_attempts)  # type: ignore[arg-type]
    decision = policy.decide(p, exit_code=exit_code, unhealthy=unhealthy, attempts=attempts)
    assert (decision.action, decision.delay) == (action, delay)
    assert decision.reason


def test_backoff_doubles_from_initial_and_caps() -> None:
    p = RestartPolicy(mode="always", backoff_initial=0.5, backoff_max=3)
    assert [policy.backoff(p, n) for n in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_attempts_reset_after_a_stable_run() -> None:
    p = RestartPolicy(mode="always", reset_after=60)
    assert policy.attempts_after_run(p, 4, ran_for=59.9) == 4
    assert policy.attempts_after_run(p, 4, ran_for=60) == 0
