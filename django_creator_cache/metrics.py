"""Cache metrics for Prometheus: a collector in prometheus_client's default registry.

Needs the ``prometheus`` extra and ``CACHE_METRICS = True``. Each alias counts in
plain numbers (``backend.metrics``); this collector reads them when the registry is
scraped, so any exporter of the default registry shows them (django-prometheus's
``/metrics``, prometheus_client's own server, or ``views.metrics.metrics_view``).
Values are per process, like every prometheus_client metric outside its
multiprocess mode.

Families (label ``alias`` on all):

* ``django_creator_cache_operations_total{operation, result}``: results ``hit`` and
  ``miss`` (per key read), ``error`` and ``short_circuit`` (per request Redis did not
  answer, or that the open circuit answered), ``fallback`` (per value the local
  fallback served);
* ``django_creator_cache_operation_duration_seconds{operation}``: a histogram, one
  observation per operation run;
* ``django_creator_cache_circuit_state{state}``: 1 for the current state
  (``closed``, ``open``, ``half_open``), 0 for the others;
* ``django_creator_cache_local_tier_hits_total``;
* ``django_creator_cache_invalidations_total{kind}`` and
  ``django_creator_cache_invalidated_entries_total{kind}``: kinds ``prefix``, ``tags``,
  ``pattern``;
* ``django_creator_cache_ratelimit_checks_total{group, result}``: ``allowed``,
  ``refused``, ``fail_open``, ``fail_closed``;
* ``django_creator_cache_single_flight_waits_total`` and
  ``django_creator_cache_single_flight_computations_total``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from . import conf
from .backend import metrics as measured
from .backend.circuit import CLOSED, HALF_OPEN, OPEN

PREFIX = "django_creator_cache"
STATES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
# The ``le`` label of each latency bucket, the last one for every call.
BOUNDS = [*(repr(bound) for bound in measured.BOUNDS), "+Inf"]


class CacheCollector(Collector):
    """Every measured alias as metric families, built when scraped."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        try:
            if not conf.read("CACHE_METRICS"):
                return
        except ImproperlyConfigured:  # a bad value must not break the registry's other metrics
            return
        every = measured.every()
        operations = CounterMetricFamily(
            f"{PREFIX}_operations",
            "Cache operation outcomes by kind and result",
            labels=["alias", "operation", "result"],
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}_operation_duration_seconds",
            "Time of one cache operation",
            labels=["alias", "operation"],
        )
        circuit = GaugeMetricFamily(
            f"{PREFIX}_circuit_state",
            "Circuit breaker state of the alias (1 for the current one)",
            labels=["alias", "state"],
        )
        local_hits = CounterMetricFamily(
            f"{PREFIX}_local_tier_hits",
            "Reads served by the local tier without a round trip",
            labels=["alias"],
        )
        invalidations = CounterMetricFamily(
            f"{PREFIX}_invalidations", "Invalidations by kind", labels=["alias", "kind"]
        )
        deleted = CounterMetricFamily(
            f"{PREFIX}_invalidated_entries",
            "Entries deleted by invalidations",
            labels=["alias", "kind"],
        )
        ratelimit = CounterMetricFamily(
            f"{PREFIX}_ratelimit_checks",
            "Rate-limit checks by group and result",
            labels=["alias", "group", "result"],
        )
        waits = CounterMetricFamily(
            f"{PREFIX}_single_flight_waits",
            "get_or_set callers that waited for another's computation",
            labels=["alias"],
        )
        computations = CounterMetricFamily(
            f"{PREFIX}_single_flight_computations",
            "Values computed by get_or_set and @cached",
            labels=["alias"],
        )
        for m in every:
            alias = m.alias
            for (operation, result), n in m.outcomes().items():
                operations.add_metric([alias, operation, result], n)
            for operation, histogram in dict(m.latency).items():
                running = 0.0
                buckets: list[tuple[str, float]] = []
                for bound, calls in zip(BOUNDS, list(histogram.counts), strict=True):
                    running += calls
                    buckets.append((bound, running))
                latency.add_metric([alias, operation], buckets, sum_value=histogram.total)
            state = STATES.get(m.breaker.state, "closed")
            for name in STATES.values():
                circuit.add_metric([alias, name], 1.0 if name == state else 0.0)
            local_hits.add_metric([alias], m.local_hits)
            for kind, (times, entries) in dict(m.invalidations).items():
                invalidations.add_metric([alias, kind], times)
                deleted.add_metric([alias, kind], entries)
            for (group, result), n in dict(m.ratelimit).items():
                ratelimit.add_metric([alias, group, result], n)
            waits.add_metric([alias], m.flights.get("wait", 0))
            computations.add_metric([alias], m.flights.get("computation", 0))
        yield from (operations, latency, circuit, local_hits, invalidations, deleted)
        yield from (ratelimit, waits, computations)


_registered: CacheCollector | None = None
_lock = threading.Lock()


def register() -> None:
    """Add the collector to prometheus_client's default registry (once per process)."""
    global _registered
    if _registered is None:
        with _lock:
            if _registered is None:
                collector = CacheCollector()
                REGISTRY.register(collector)
                _registered = collector
