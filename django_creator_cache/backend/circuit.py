"""A circuit breaker per alias and process, and the outage it reports.

While Redis is down every call would pay a connection attempt (or a full
timeout). After ``failures`` consecutive connection failures the circuit opens
and calls fail fast without touching the network; after ``cooldown`` seconds
one caller is let through as a probe (half-open); its success closes the
circuit, its failure opens it again. A probe that ends any other way (a
cancelled coroutine, a signal handler's exception) is abandoned, and one that
never reports back expires after ``probe_timeout``: nothing can leave the
breaker half-open for good. The breaker also owns the outage log: one warning
when an outage starts, one info line when it ends.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("django_creator_cache")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure breaker; cheap to ask while closed (one attribute)."""

    def __init__(
        self, name: str, failures: int = 5, cooldown: float = 5.0, probe_timeout: float = 5.0
    ) -> None:
        self.name = name
        self.threshold = max(int(failures), 1)
        self.cooldown = float(cooldown)
        # A probe that has not reported back after this long is presumed lost.
        self.probe_timeout = float(probe_timeout)
        # ``failures`` is non-zero only while something is wrong, so the hot
        # path tests a single int to know whether it has to report a success.
        self.failures = 0
        self.opened_at = 0.0
        self.in_outage = False
        self._probing = False
        self._probe_started = 0.0
        self._lock = threading.Lock()
        self.outages = 0

    @property
    def state(self) -> str:
        if not self.opened_at:
            return CLOSED
        return HALF_OPEN if self._probing else OPEN

    def allow(self) -> bool:
        """Whether a call may touch the network now (always while closed).

        While open, True means the caller is the probe: it must end in
        ``record_success``, ``record_failure`` or ``abandon``.
        """
        if not self.opened_at:
            return True
        now = time.monotonic()
        if now - self.opened_at < self.cooldown:
            return False
        with self._lock:
            if self._probing and now - self._probe_started < self.probe_timeout:
                return False
            self._probing = True
            self._probe_started = now
            return True

    def abandon(self) -> None:
        """The probe ended without an answer (cancelled, interrupted): let another probe."""
        with self._lock:
            self._probing = False

    def record_failure(self, error: BaseException, location: str) -> bool:
        """A connection failure: count it, maybe open the circuit, log a new outage.

        Returns True when this failure started a new outage.
        """
        with self._lock:
            self.failures += 1
            if self._probing or self.failures >= self.threshold:
                self.opened_at = time.monotonic()
                self._probing = False
            new_outage = not self.in_outage
            self.in_outage = True
        if new_outage:
            self.outages += 1
            logger.warning(
                "cache %r (%s) unavailable: %s: %s; serving without it until it answers again",
                self.name,
                location,
                type(error).__name__,
                error,
            )
        return new_outage

    def record_success(self) -> bool:
        """A call succeeded: close the circuit. True if this ended an outage."""
        with self._lock:
            ended = self.in_outage
            self.failures = 0
            self.opened_at = 0.0
            self._probing = False
            self.in_outage = False
        if ended:
            logger.info("cache %r is available again", self.name)
        return ended

    def reset(self) -> None:
        """Forget all state (tests, settings changes)."""
        with self._lock:
            self.failures = 0
            self.opened_at = 0.0
            self._probing = False
            self.in_outage = False


_breakers: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()


def breaker_for(
    key: str, alias: str, failures: int, cooldown: float, probe_timeout: float
) -> CircuitBreaker:
    """The process-wide breaker of one alias (Django makes a backend per thread)."""
    breaker = _breakers.get(key)
    if breaker is None:
        with _registry_lock:
            breaker = _breakers.setdefault(key, CircuitBreaker(alias, failures, cooldown))
    breaker.threshold = max(int(failures), 1)
    breaker.cooldown = float(cooldown)
    breaker.probe_timeout = float(probe_timeout)
    return breaker
