"""``clear()`` while other processes write: what they wrote stays invalidatable.

``clear()`` SCANs its alias's keys and deletes them page by page. It used to delete the
invalidation indexes as it met them: an entry written behind the SCAN (kept, as a write
after the clear) could lose its index membership when its shard was deleted a moment
later, and escape every ``invalidate_prefix`` until its TTL. Two writer processes write
tracked entries during a ``clear()`` slowed by an untracked keyspace; after they stop,
one ``invalidate_prefix`` must leave nothing under the prefix.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches

from tests.conftest import cluster_entry, flush, single_entry
from tests.processes import CONTEXT, exit_codes, process

WRITERS = 2
BULK = 60_000  # other keys that keep clear()'s SCAN busy


def _write(stop: Any, started: Any, writer: int) -> None:
    cache = caches["default"]
    cache.set(f"race:w{writer}:warm", 0)
    started.put(writer)
    n = 0
    while not stop.is_set():
        cache.set(f"race:w{writer}:{n}", n, timeout=300)
        n += 1


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_entries_written_during_a_clear_stay_invalidatable(
    request: pytest.FixtureRequest, settings: Any, mode: str
) -> None:
    if mode == "single":
        entry = single_entry(request.getfixturevalue("redis_server"))
    else:
        entry = cluster_entry(request.getfixturevalue("redis_cluster"))
    settings.CACHES = {"default": {**entry, "KEY_PREFIX": "app"}}
    cache = caches["default"]
    flush(cache)
    pipe = cache.get_client().pipeline()  # keys of no alias: SCAN walks them all the same
    for i in range(BULK):
        pipe.set(f"bulk:{i}", i, ex=300)
    pipe.execute()
    stop, started = CONTEXT.Event(), CONTEXT.Queue()
    writers = [process(_write, stop, started, n) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    try:
        for _ in writers:
            started.get(timeout=60)
        assert cache.clear() is True
    finally:
        stop.set()
        codes = exit_codes(writers, 60)
    assert codes == [0] * WRITERS
    cache.invalidate_prefix("race")
    assert cache.keys("race:*") == []
    flush(cache)
