"""Restart decisions as a pure function of (policy, why it stopped, attempts): no clock, no I/O.

Compose's restart words decide *whether* to restart; ``max_attempts`` (``on-failure:N`` or
``x-unistack.restart.max_attempts``) bounds *how often* in a row; ``backoff`` says *when*: the first restart
is immediate, then ``backoff_initial`` doubling up to ``backoff_max``. After a run of ``reset_after`` seconds
the count starts again. An unhealthy service counts as a failure (Compose never restarts it; we do) unless
``restart: "no"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from unistack.config.model import RestartPolicy
from unistack.engine import exits

Action = Literal["restart", "exit", "fatal"]


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


def backoff(policy: RestartPolicy, attempt: int) -> float:
    """Delay before restart number ``attempt`` (1-based) of the current run of failures."""
    if attempt <= 1:
        return 0.0
    return float(min(policy.backoff_max, policy.backoff_initial * 2 ** (attempt - 2)))


def attempts_after_run(policy: RestartPolicy, attempts: int, ran_for: float) -> int:
    """The failure count to carry on with after an incarnation that ran ``ran_for`` seconds."""
    return 0 if ran_for >= policy.reset_after else attempts


def decide(
    policy: RestartPolicy, *, exit_code: int | None, unhealthy: bool, attempts: int, ended: str = ""
) -> Decision:
    """What to do after an incarnation exited (``exit_code``) or was found unhealthy.

    ``attempts`` is how many restarts were already made in the current run of failures; ``ended`` says how it
    ended in words (``exits.ended``: the signal that killed it, why its exit code is unknown), for the reason.
    """
    failed = unhealthy or exit_code != 0
    why = "unhealthy" if unhealthy else ended or exits.ended(exit_code)
    if policy.mode == "no":
        return Decision("exit", reason=f'{why}; restart is "no"')
    if policy.mode == "on-failure" and not failed:
        return Decision("exit", reason="exited with code 0; restart is on-failure")
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return Decision("fatal", reason=f"{why}; gave up after {attempts} restart(s)")
    attempt = attempts + 1
    return Decision("restart", delay=backoff(policy, attempt), reason=f"{why}; restart {attempt}")
