"""A counter past 64 bits stays exact when several processes increment it at once.

Redis's INCRBY stops at 64 bits; beyond, the backend adds in Python and writes the sum
back only if the counter still holds what it read (a compare-and-set script), reading
again otherwise. Before, a plain ``SET`` wrote the sum back, so concurrent increments
overwrote each other (about 1,600 increments counted as 474).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches

from tests.conftest import cluster_entry, single_entry
from tests.processes import CONTEXT, exit_codes, process

PROCESSES = 4
INCREMENTS = 60  # per process
START = 2**64


def _increment(start: Any) -> None:
    cache = caches["default"]
    cache.get("connect")  # connect before the start line
    start.wait(60)
    for _ in range(INCREMENTS):
        cache.incr("big")


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_increments_past_64_bits_from_several_processes_all_count(
    request: pytest.FixtureRequest, settings: Any, mode: str
) -> None:
    if mode == "single":
        entry = single_entry(request.getfixturevalue("redis_server"))
    else:
        entry = cluster_entry(request.getfixturevalue("redis_cluster"))
    settings.CACHES = {"default": entry}
    cache = caches["default"]
    cache.set("big", START, timeout=500)
    start = CONTEXT.Barrier(PROCESSES)
    workers = [process(_increment, start) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    assert exit_codes(workers, 120) == [0] * PROCESSES
    assert cache.get("big") == START + PROCESSES * INCREMENTS
    assert 400 <= cache.ttl("big") <= 500  # the key kept its life
