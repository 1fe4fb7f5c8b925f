"""Fixtures the engine's unit tests share: a fake clock and a fake runtime on it (``fakes.py``)."""

from __future__ import annotations

import pytest

from .fakes import FakeClock, FakeRuntime


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(clock: FakeClock) -> FakeRuntime:
    return FakeRuntime(clock)
