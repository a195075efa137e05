"""What an alias measures for Prometheus (``CACHE_METRICS``), kept as plain numbers.

One ``Metrics`` per alias and process, shared by its per-thread backends through
``Runtime.metrics``; None while the setting is off, so the executor and the few
operations that know an outcome pay one ``is None`` test and nothing else. While it
is on they add to dicts and lists (no lock, no prometheus_client call);
``django_creator_cache.metrics`` turns them into metric families when a scraper asks.
Like the in-process counters, ``+= 1`` under the GIL may rarely lose an increment
between threads: statistics tolerate it.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import conf

if TYPE_CHECKING:
    from .circuit import CircuitBreaker

# Upper bounds (seconds) of the latency buckets: a cache call takes from a tenth of a
# millisecond (a hit on loopback) to its timeout (a second by default).
BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Latency:
    """One operation's histogram: calls per bucket (not cumulative, the slower ones
    last) and the sum of their seconds."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total = 0.0


class Metrics:
    """The measurements of one alias in this process."""

    __slots__ = (
        "alias",
        "breaker",
        "flights",
        "get_hits",
        "get_misses",
        "invalidations",
        "latency",
        "local_hits",
        "ratelimit",
        "results",
    )

    def __init__(self, alias: str, breaker: CircuitBreaker) -> None:
        self.alias = alias
        self.breaker = breaker  # read when scraped: the circuit's state
        # (operation, result) -> count; result: hit, miss, error, short_circuit, fallback
        self.results: defaultdict[tuple[str, str], int] = defaultdict(int)
        # The hottest two, kept apart (an attribute is the cheapest thing to add to);
        # exported as results of "get".
        self.get_hits = 0
        self.get_misses = 0
        self.latency: defaultdict[str, Latency] = defaultdict(Latency)
        self.local_hits = 0
        # kind (prefix, tags, pattern) -> [invalidations, entries deleted]
        self.invalidations: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        # (group, result) -> checks; result: allowed, refused, fail_open, fail_closed
        self.ratelimit: defaultdict[tuple[str, str], int] = defaultdict(int)
        # "wait" / "computation" -> count (get_or_set and @cached)
        self.flights: defaultdict[str, int] = defaultdict(int)

    def observe(self, operation: str, seconds: float) -> None:
        """One run of ``operation`` took ``seconds`` (its requests and its own work)."""
        histogram = self.latency[operation]
        histogram.counts[bisect_left(BOUNDS, seconds)] += 1
        histogram.total += seconds

    def count(self, operation: str, result: str, n: int = 1) -> None:
        self.results[operation, result] += n

    def outcomes(self) -> dict[tuple[str, str], int]:
        """Every (operation, result) count, the get hits and misses included."""
        found = dict(self.results)
        for key, n in ((("get", "hit"), self.get_hits), (("get", "miss"), self.get_misses)):
            if n:
                found[key] = found.get(key, 0) + n
        return found

    def invalidated(self, kind: str, deleted: int) -> None:
        cell = self.invalidations[kind]
        cell[0] += 1
        cell[1] += deleted

    def ratelimited(self, group: str, result: str) -> None:
        self.ratelimit[group, result] += 1

    def flight(self, event: str) -> None:
        self.flights[event] += 1


_aliases: dict[str, Metrics] = {}
_lock = threading.Lock()
# Run when an alias turns metrics on (idempotent): the exporter registers itself here
# (``apps.ready`` wires it), so the backend never imports it.
_on_enable: list[Callable[[], None]] = []


def when_enabled(hook: Callable[[], None]) -> None:
    """Call ``hook`` whenever an alias turns metrics on (registers the exporter)."""
    if hook not in _on_enable:
        _on_enable.append(hook)


def for_alias(alias: str, breaker: CircuitBreaker) -> Metrics | None:
    """The alias's ``Metrics`` if ``CACHE_METRICS`` is on (read now), else None.

    Turning it on registers the exporter in prometheus_client's default registry once
    per process; without prometheus_client that is ``ImproperlyConfigured`` (system
    check E050 says so at start-up).
    """
    if not conf.read("CACHE_METRICS"):
        return None
    for hook in _on_enable:
        hook()
    metrics = _aliases.get(alias)
    if metrics is None:
        with _lock:
            metrics = _aliases.setdefault(alias, Metrics(alias, breaker))
    metrics.breaker = breaker  # the latest settings' breaker is the one in use
    return metrics


def every() -> list[Metrics]:
    """Every alias measured in this process (for the exporter)."""
    return list(_aliases.values())
