"""Methods that take ``DEFAULT_TIMEOUT`` behave as django-redis's, on every topology
(django-redis's own suite checks these; ``pexpire(key, DEFAULT_TIMEOUT)`` failed before)."""

from __future__ import annotations

import datetime
from datetime import timedelta

import pytest
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from tests.conftest import Target


def test_expire_and_pexpire_take_default_timeout(target: Target) -> None:
    cache = target.cache
    cache.set("foo", "bar", timeout=None)
    assert cache.expire("foo", DEFAULT_TIMEOUT) is True
    assert 0 < cache.ttl("foo") <= cache.default_timeout
    assert cache.expire("not-existent-key", DEFAULT_TIMEOUT) is False
    cache.set("foo", "bar", timeout=None)
    # django-redis passes the default timeout number to PEXPIRE: milliseconds.
    assert cache.pexpire("foo", DEFAULT_TIMEOUT) is True
    assert 0 < cache.pttl("foo") <= cache.default_timeout
    assert cache.pexpire("not-existent-key", DEFAULT_TIMEOUT) is False


def test_pexpire_and_pexpire_at_like_django_redis(target: Target) -> None:
    cache = target.cache
    cache.set("foo", "bar", timeout=None)
    assert cache.pexpire("foo", 20500) is True
    assert cache.pttl("foo") == pytest.approx(20500, abs=50)
    assert cache.pexpire("foo", timedelta(seconds=30)) is True
    assert cache.pttl("foo") == pytest.approx(30_000, abs=50)
    assert cache.pexpire("not-existent-key", 20500) is False
    expiration = datetime.datetime.now() + timedelta(hours=1)
    assert cache.pexpire_at("foo", expiration) is True
    assert cache.pttl("foo") == pytest.approx(3_600_000, abs=1_000)
    assert cache.expire_at("foo", expiration) is True
    assert cache.ttl("foo") == pytest.approx(3600, abs=2)
    assert cache.pexpire_at("not-existent-key", expiration) is False


def test_touch_and_set_take_default_timeout(target: Target) -> None:
    cache = target.cache
    cache.set("foo", "bar", timeout=None)
    assert cache.touch("foo", DEFAULT_TIMEOUT) is True
    assert 0 < cache.ttl("foo") <= cache.default_timeout
    assert cache.set("foo", "bar", DEFAULT_TIMEOUT) is True
    assert 0 < cache.ttl("foo") <= cache.default_timeout
