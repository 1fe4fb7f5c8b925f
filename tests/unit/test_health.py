from unistack.config.model import Healthcheck
from unistack.engine.health import HealthTracker


def check(**kw: float) -> Healthcheck:
    base = {"interval": 10.0, "timeout": 1.0, "retries": 3, "start_period": 0.0, "start_interval": 2.0}
    base.update(kw)
    return Healthcheck(kind="CMD", test=("true",), **base)  # type: ignore[arg-type]


def test_first_success_is_healthy_and_retries_failures_make_unhealthy() -> None:
    t = HealthTracker(check(), started=0)
    assert t.record(True, 10) == "healthy"
    assert t.record(False, 20) is None
    assert t.record(False, 30) is None
    assert t.record(False, 40) == "unhealthy"
    assert t.record(True, 50) == "healthy"


def test_failures_in_start_period_do_not_count() -> None:
    t = HealthTracker(check(start_period=30), started=0)
    for now in (2, 4, 6, 28):
        assert t.record(False, now) is None
        assert t.failures == 0
    assert t.next_delay(28) == 2.0  # start_interval inside the start period
    assert t.record(False, 31) is None
    assert t.failures == 1
    assert t.next_delay(31) == 10.0


def test_success_ends_the_start_period() -> None:
    t = HealthTracker(check(start_period=30), started=0)
    assert t.record(True, 2) == "healthy"
    assert t.next_delay(3) == 10.0
    t.record(False, 4)
    assert t.failures == 1


def test_zero_retries_means_dockers_default_of_three() -> None:
    t = HealthTracker(check(retries=0), started=0)
    assert [t.record(False, n) for n in (1, 2, 3)] == [None, None, "unhealthy"]
