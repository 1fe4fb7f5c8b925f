"""The fuzz suite's settings: ``ci`` (the default, what ./run-tests runs: ~2,000 documents in well under a minute)
and ``long`` (UNISTACK_FUZZ_PROFILE=long, for hunting by hand). No deadline from hypothesis: each load is timed by
the tests themselves against a robustness bound of 2 s."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,  # nothing written into the working tree; crashers found are kept as texts in the tests
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=650, **_COMMON)  # x3 tests: ~2,000 documents
settings.register_profile("long", max_examples=20000, **_COMMON)
settings.load_profile(os.environ.get("UNISTACK_FUZZ_PROFILE", "ci"))
