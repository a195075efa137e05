"""Domain managers when Redis fails, and with every serializer (single server)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import caches

from django_creator_cache.exceptions import CacheUnavailable
from django_creator_cache.managers import (
    BotAnalysis,
    DailyPayout,
    Managers,
    ViewStats,
    managers,
)
from tests.conftest import single_entry
from tests.redis_servers import RedisServer

DAY = datetime.date(2024, 1, 15)
AT = datetime.datetime(2024, 1, 15, 18, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


@pytest.fixture
def down(own_redis_server: RedisServer, settings: Any) -> Iterator[Managers]:
    """Managers on a server that has been stopped."""
    settings.CACHES = {"default": single_entry(own_redis_server, CIRCUIT_FAILURES=1000)}
    m = managers("default")
    m.feature_flags.set("warm-up", True)  # connect once while it is up
    own_redis_server.stop()
    yield m


def test_reads_fail_open(down: Managers) -> None:
    assert down.sessions.get("s", "none") == "none"
    assert down.sessions.user_sessions(1) == []
    assert down.view_tracking.get(1, 2) is None
    assert down.bot_analysis.get(1, 2) is None
    assert down.payouts.get(DAY) is None
    assert down.feature_flags.get("warm-up", "default") == "default"
    assert down.feature_flags.all() == {}
    assert down.user_cache.get(1, "x", "d") == "d"
    assert down.auth_tokens.get("token") is None
    assert down.auth_tokens.get_user_data(1, "d") == "d"
    assert caches["default"].stats(server=False)["errors"] >= 10  # counted, not hidden


def test_analytics_and_user_cache_writes_fail_open(down: Managers) -> None:
    assert down.view_tracking.add(1, 2, views=1) is None  # not counted, no exception
    assert down.view_tracking.set(1, 2, ViewStats(1)) is False
    assert down.bot_analysis.set(1, 2, BotAnalysis(0.5, "allow")) is False
    assert down.user_cache.set(1, "x", 1) is False
    assert down.user_cache.delete(1, "x") is False


def test_rate_limits_fail_open_by_default(down: Managers, settings: Any) -> None:
    usage = down.rate_limits.hit("tiktok", 1, limit=5, window=60)
    assert usage.allowed and usage.unavailable
    settings.RATELIMIT_FAIL_OPEN = False
    assert not down.rate_limits.hit("tiktok", 1, limit=5, window=60).allowed


@pytest.mark.parametrize(
    "write",
    [
        lambda m: m.sessions.set("s", {}, user_id=1),
        lambda m: m.sessions.delete("s"),
        lambda m: m.sessions.delete_user_sessions(1),
        lambda m: m.payouts.set(DailyPayout(DAY, Decimal("1.00"))),
        lambda m: m.payouts.mark_processed(DAY),
        lambda m: m.feature_flags.set("f", True),
        lambda m: m.user_cache.delete_all(1),
        lambda m: m.auth_tokens.set("t", 1),
        lambda m: m.auth_tokens.clear("t"),
        lambda m: m.auth_tokens.clear_user(1),
    ],
    ids=[
        "session-set",
        "session-delete",
        "logout-everywhere",
        "payout-set",
        "payout-mark",
        "flag-set",
        "user-delete-all",
        "token-set",
        "token-clear",
        "token-clear-user",
    ],
)
def test_writes_that_must_not_silently_fail_raise(down: Managers, write: Any) -> None:
    with pytest.raises(CacheUnavailable) as info:
        write(down)
    assert info.value.alias == "default"


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
def test_money_and_time_zones_survive_every_serializer(
    redis_server: RedisServer, settings: Any, serializer: str
) -> None:
    settings.CACHES = {"default": single_entry(redis_server, SERIALIZER=serializer)}
    caches["default"].clear()
    m = managers("default")
    payout = DailyPayout(DAY, Decimal("1999.990"), 1, 2, AT)
    assert m.payouts.set(payout)
    got = m.payouts.get(DAY)
    assert got == payout
    assert got is not None and isinstance(got.total_amount, Decimal)
    assert str(got.total_amount) == "1999.990"  # not 1999.99, not a float
    assert got.processed_at is not None and got.processed_at.tzinfo == AT.tzinfo
    analysis = BotAnalysis(0.875, "flag", "new account", AT)
    m.bot_analysis.set(1, 2, analysis)
    assert m.bot_analysis.get(1, 2) == analysis
    m.view_tracking.add(1, 2, views=3, at=AT)
    assert m.view_tracking.get(1, 2) == ViewStats(3, 0, 0, 0, AT)
    m.sessions.set("s", {"_auth_user_id": "9", "cart": [1, "two"]}, user_id="9")
    assert m.sessions.get("s") == {"_auth_user_id": "9", "cart": [1, "two"]}
    m.feature_flags.set("limit", 10)
    assert m.feature_flags.all() == {"limit": 10}
