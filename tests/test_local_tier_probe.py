"""A pytest plugin (``-p tests.test_local_tier_probe``) for the conformance run with the
local tier on: at the end it prints how many reads the tiers served, so
``tests/test_local_tier.py`` can check they were used, not just switched on.
Collected as a test module it holds no tests."""

from __future__ import annotations

from typing import Any


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    from django_creator_cache import stats

    hits = sum(counters.local_hits for counters in stats.registry._counters.values())
    print(f"\nLOCAL_TIER_HITS={hits}")
