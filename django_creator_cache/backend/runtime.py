"""What one alias keeps per process: circuit breaker, counters, local fallback, local tier,
metrics (``CACHE_METRICS``).

Django makes a backend object per thread; these must be shared by all of them,
so they live here, one ``Runtime`` per alias and location, looked up by the
backend on first use (and again after a settings change).
"""

from __future__ import annotations

import threading
from typing import Any

from . import counters, metrics
from .circuit import CircuitBreaker, breaker_for
from .fallback import LocalFallback
from .options import BackendOptions


class Runtime:
    """The per-process state of one alias, shared by its per-thread backends."""

    __slots__ = ("alias", "breaker", "counters", "fallback", "local_tier", "metrics", "name")

    def __init__(self, name: str, alias: str, options: BackendOptions) -> None:
        self.name = name
        self.alias = alias
        # A probe may take a connect and a command timeout before it reports back.
        probe_timeout = max(
            options.circuit_cooldown,
            (options.connect_timeout or 0) + (options.command_timeout or 0) + 1.0,
        )
        self.breaker: CircuitBreaker = breaker_for(
            name, alias, options.circuit_failures, options.circuit_cooldown, probe_timeout
        )
        self.counters: counters.Counters = counters.registry.counters(name)
        self.fallback: LocalFallback | None = None
        # The coherent read tier (OPTIONS["LOCAL_TIER"]), attached by the backend on first
        # use: it needs the alias's key prefix.
        self.local_tier: Any = None
        if options.local_fallback:
            self.fallback = _fallback(name, options.local_fallback_size)
        # None while CACHE_METRICS is off: the one test the hot path pays.
        self.metrics: metrics.Metrics | None = metrics.for_alias(alias, self.breaker)

    def recovered(self) -> None:
        """A call succeeded after failures: close the circuit, drop the local fallback."""
        if self.breaker.record_success() and self.fallback is not None:
            self.fallback.clear()


_fallbacks: dict[str, LocalFallback] = {}
_lock = threading.Lock()


def _fallback(name: str, size: int) -> LocalFallback:
    with _lock:
        return _fallbacks.setdefault(name, LocalFallback(size))
