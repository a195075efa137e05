"""Unit tests of the circuit breaker and the local fallback LRU (no Redis needed)."""

from __future__ import annotations

import logging
import time

import pytest

from django_creator_cache.backend.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from django_creator_cache.backend.fallback import LocalFallback


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker("t", failures=3, cooldown=60)
    for _ in range(2):
        breaker.record_failure(ConnectionError("down"), "redis://h")
        assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure(ConnectionError("down"), "redis://h")
    assert breaker.state == OPEN
    assert breaker.allow() is False


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker("t", failures=2, cooldown=60)
    breaker.record_failure(ConnectionError(), "x")
    breaker.record_success()
    breaker.record_failure(ConnectionError(), "x")
    assert breaker.state == CLOSED


def test_half_open_lets_exactly_one_probe_through_after_cooldown() -> None:
    breaker = CircuitBreaker("t", failures=1, cooldown=0.05)
    breaker.record_failure(ConnectionError(), "x")
    assert breaker.allow() is False
    time.sleep(0.06)
    assert breaker.allow() is True
    assert breaker.state == HALF_OPEN
    assert breaker.allow() is False  # only one probe at a time
    breaker.record_failure(ConnectionError(), "x")  # probe failed: open again
    assert breaker.state == OPEN and breaker.allow() is False
    time.sleep(0.06)
    assert breaker.allow() is True
    assert breaker.record_success() is True
    assert breaker.state == CLOSED and breaker.allow()


def test_one_warning_per_outage_and_one_recovery_line(caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker("default", failures=2, cooldown=60)
    with caplog.at_level(logging.INFO, logger="django_creator_cache"):
        for _ in range(10):
            breaker.record_failure(ConnectionError("refused"), "redis://127.0.0.1:1/0")
        breaker.record_success()
        breaker.record_success()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "'default'" in warnings[0].getMessage()
    assert "refused" in warnings[0].getMessage()
    assert len(infos) == 1 and "available again" in infos[0].getMessage()
    assert breaker.outages == 1


def test_fallback_is_bounded_lru() -> None:
    lru = LocalFallback(maxsize=2)
    lru.set("a", 1, None)
    lru.set("b", 2, None)
    assert lru.get("a") == 1  # a is now most recent
    lru.set("c", 3, None)
    assert lru.get("b") is None
    assert lru.get("a") == 1 and lru.get("c") == 3
    assert len(lru) == 2


def test_fallback_respects_expiry_and_delete() -> None:
    lru = LocalFallback()
    lru.set("a", 1, 20)
    lru.set("b", 2, 0)
    assert lru.get("a") == 1
    assert lru.get("b", "missing") == "missing"
    time.sleep(0.03)
    assert lru.get("a", "gone") == "gone"
    lru.set("c", 3, None)
    assert lru.delete("c") is True and lru.delete("c") is False
    lru.set("d", 4, None)
    lru.clear()
    assert len(lru) == 0
