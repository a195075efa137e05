"""A reader in another process never sees the pre-save value once the commit has returned.

The parent saves a Campaign inside ``transaction.atomic()`` over and over; its rule
(``tests.testapp.apps``) invalidates prefix ``campaigns`` and tag ``campaign:<pk>`` at
commit. A spawned process reads the two cached copies of the row in a tight loop. The
database is the parent's (in-memory SQLite): the reader only reads the cache, and
compares what it gets with ``committed``, the version whose commit has returned,
which it reads *before* each read of the cache. On single Redis and on a Cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.db import transaction

from tests.conftest import cluster_entry, flush, single_entry

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 150
DEADLINE = 30.0  # seconds for anything the parent waits for


def _reader(
    entry: dict[str, Any],
    keys: list[str],
    committed: Any,
    seen: Any,
    missed: Any,
    reads: Any,
    stop: Any,
    results: Any,
) -> None:
    """Read ``keys`` until ``stop``; report every read older than the last commit."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    django.setup()
    settings.CACHES = {"default": entry}
    cache = caches["default"]
    stale: list[tuple[str, int, int]] = []
    count = 0
    while not stop.is_set():
        version = committed.value  # first: the commit of ``version`` had returned before
        budgets = [None if (v := cache.get(key)) is None else v["budget"] for key in keys]
        count += 1
        reads.value = count
        stale += [
            (k, b, version)
            for k, b in zip(keys, budgets, strict=True)
            if b is not None and b < version
        ]
        if None not in budgets:
            seen.value = min(b for b in budgets if b is not None)
        elif budgets == [None] * len(keys):
            missed.value = version
    results.put({"reads": count, "stale": stale[:20], "stale_count": len(stale)})


def _wait(value: Any, target: int, what: str) -> None:
    """Until the shared ``value`` reaches ``target``."""
    deadline = time.monotonic() + DEADLINE
    while value.value < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.0002)


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_a_reader_in_another_process_never_sees_the_pre_save_value_after_the_commit(
    request: pytest.FixtureRequest, settings: Any, mode: str
) -> None:
    from tests.testapp.models import Campaign  # not at import: the reader imports this module

    servers = request.getfixturevalue("redis_server" if mode == "single" else "redis_cluster")
    entry = single_entry(servers) if mode == "single" else cluster_entry(servers)
    settings.CACHES = {"default": entry}
    cache = caches["default"]
    flush(cache)
    campaign = Campaign.objects.create(name="Spring", budget=0)
    by_prefix, by_tag = f"campaigns:{campaign.pk}:detail", f"pages:campaign-{campaign.pk}"

    ctx = multiprocessing.get_context("spawn")
    committed, seen, missed, reads = (ctx.Value("q", n) for n in (0, -1, 0, 0))
    stop, results = ctx.Event(), ctx.Queue()
    reader = ctx.Process(
        target=_reader,
        args=(entry, [by_prefix, by_tag], committed, seen, missed, reads, stop, results),
    )
    reader.start()
    try:
        for version in range(1, ROUNDS + 1):
            # The cached copies of the row as it is now (what a read-through would store).
            cache.set(by_prefix, {"budget": version - 1}, 300)
            cache.set(by_tag, {"budget": version - 1}, 300, tags=[f"campaign:{campaign.pk}"])
            _wait(seen, version - 1, f"the reader saw version {version - 1}")
            with transaction.atomic():
                campaign.budget = version
                campaign.save()
                _wait(reads, reads.value + 2, "the reader read during the transaction")
                assert cache.get(by_prefix) == {"budget": version - 1}  # not before the commit
            committed.value = version  # the commit (and its on_commit invalidation) returned
            _wait(missed, version, f"the reader missed after commit {version}")
        stop.set()
        try:
            report = results.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError("the reader did not report in time") from None
    finally:
        stop.set()
        reader.join(10)
        if reader.is_alive():
            reader.kill()
            reader.join(5)
    assert reader.exitcode == 0
    assert report["stale_count"] == 0, report["stale"]
    assert report["reads"] >= 3 * ROUNDS
    assert Campaign.objects.get().budget == ROUNDS
