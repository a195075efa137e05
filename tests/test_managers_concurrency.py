"""Concurrent view-tracking increments from several processes add up exactly."""

from __future__ import annotations

from typing import Any

from django_creator_cache.managers import managers
from tests.conftest import Target
from tests.processes import CONTEXT, exit_codes, process

PROCESSES = 4
ADDS = 250


def _add_views(barrier: Any) -> None:
    views = managers("default").view_tracking
    barrier.wait(timeout=30)
    for _ in range(ADDS):
        if views.add(7, 9, views=1, likes=2) is None:
            raise SystemExit(3)  # not counted: Redis failed


def test_increments_from_four_processes_sum_exactly(target: Target) -> None:
    barrier = CONTEXT.Barrier(PROCESSES)
    procs = [process(_add_views, barrier) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    assert exit_codes(procs, 60) == [0] * PROCESSES
    totals = managers("default").view_tracking.get(7, 9)
    assert totals is not None
    assert (totals.views, totals.likes) == (PROCESSES * ADDS, 2 * PROCESSES * ADDS)
