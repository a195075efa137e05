"""Domain managers on real servers, in all three modes (``cache`` fixture)."""

from __future__ import annotations

import datetime
import time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from redis.crc import key_slot

from django_creator_cache.managers import (
    BotAnalysis,
    DailyPayout,
    Managers,
    ViewStats,
    managers,
)
from django_creator_cache.managers.auth_tokens import token_id
from django_creator_cache.managers.sessions import session_name
from tests.conftest import Target

PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture
def m(cache: Any) -> Managers:
    return managers("default")


def _raw(cache: Any) -> Any:
    return cache.get_client()


def _slot(key: str) -> int:
    return key_slot(key.encode())


# -- entry point ------------------------------------------------------------------------------


def test_entry_point_looks_the_cache_up_per_call(m: Managers, settings: Any) -> None:
    assert repr(m) == "<Managers alias='default'>"
    assert m.sessions is m.sessions  # one manager object per Managers
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(ImproperlyConfigured, match="RedisCache"):
        m.sessions.get("abc")


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_set_get_delete(m: Managers) -> None:
    sessions = m.sessions
    assert sessions.get("s1") is None
    assert sessions.set("s1", {"cart": [1, 2]}) is True
    assert sessions.get("s1") == {"cart": [1, 2]}
    assert sessions.exists("s1") is True
    assert sessions.set("s1", {"x": 1}, nx=True) is False  # exists: nx refuses
    assert sessions.set("s2", {"x": 1}, xx=True) is False  # missing: xx refuses
    assert sessions.get("s2", "none") == "none"
    assert sessions.delete("s1") is True
    assert sessions.delete("s1") is False
    assert sessions.get("s1") is None


def test_sessions_use_the_session_ttl_policy(m: Managers, cache: Any, settings: Any) -> None:
    settings.CACHE_TTL_SESSION = 500
    m.sessions.set("s1", {}, user_id=7)
    assert 495_000 < _raw(cache).pttl(m.sessions._store.entry_key(session_name("s1"))) <= 500_000
    assert 495_000 < _raw(cache).pttl(m.sessions._store.index_key(7)) <= 500_000


def test_every_session_of_a_user(m: Managers, cache: Any) -> None:
    sessions = m.sessions
    for sid in ("a", "b", "c"):
        sessions.set(sid, {"n": sid}, user_id=42)
    sessions.set("other", {}, user_id=43)
    sessions.set("anonymous", {})
    assert sorted(sessions.user_sessions(42)) == sorted(map(session_name, "abc"))
    assert sessions.user_of("a") == "42"
    assert sessions.user_of("anonymous") is None
    # Deleting one session takes it out of the index.
    sessions.delete("b")
    assert sorted(sessions.user_sessions(42)) == sorted(map(session_name, "ac"))
    # A session that vanished behind our back (evicted) is dropped from the list.
    _raw(cache).delete(sessions._store.entry_key(session_name("c")))
    assert sessions.user_sessions(42) == [session_name("a")]
    named = session_name("a").encode()
    assert _raw(cache).zrange(sessions._store.index_key(42), 0, -1) == [named]
    # Log out everywhere: only this user's sessions go.
    assert sessions.delete_user_sessions(42) == 1
    assert sessions.get("a") is None
    assert sessions.user_sessions(42) == []
    assert sessions.get("other") == {} and sessions.get("anonymous") == {}
    assert sessions.user_sessions(43) == [session_name("other")]


def test_user_index_is_pruned_as_sessions_expire(m: Managers, cache: Any) -> None:
    sessions = m.sessions
    sessions.set("short", {}, user_id=5, ttl=0.2)
    sessions.set("long", {}, user_id=5, ttl=60)
    index = sessions._store.index_key(5)
    assert _raw(cache).pttl(index) > 55_000  # the index lives as long as its longest entry
    time.sleep(0.3)
    assert sessions.user_sessions(5) == [session_name("long")]
    # pruned by expiry score
    assert _raw(cache).zrange(index, 0, -1) == [session_name("long").encode()]
    # A shorter session never shortens the index.
    sessions.set("short2", {}, user_id=5, ttl=1)
    assert _raw(cache).pttl(index) > 55_000


def test_a_session_moved_to_another_user_leaves_the_first_index(m: Managers) -> None:
    sessions = m.sessions
    sessions.set("s", {}, user_id=1)
    sessions.set("s", {}, user_id=2)
    assert sessions.user_sessions(1) == []
    assert sessions.user_sessions(2) == [session_name("s")]
    sessions.set("s", {})  # logged out, session kept
    assert sessions.user_sessions(2) == []


# -- view tracking ----------------------------------------------------------------------------


def test_view_tracking_counts(m: Managers, cache: Any) -> None:
    views = m.view_tracking
    assert views.get(1, 2) is None
    at = datetime.datetime(2024, 1, 15, 10, 30, tzinfo=PARIS)
    totals = views.add(1, 2, views=10, likes=2, at=at)
    assert totals == ViewStats(10, 2, 0, 0, at)
    totals = views.add(1, 2, views=5, comments=1, shares=3)
    assert totals is not None
    assert (totals.views, totals.likes, totals.comments, totals.shares) == (15, 2, 1, 3)
    stored = views.get(1, 2)
    assert stored == totals
    assert stored.timestamp is not None and stored.timestamp.tzinfo is not None
    assert views.get(1, 3) is None  # another campaign
    # TTL policy view_tracking (60 s), refreshed by each write.
    assert 55_000 < _raw(cache).pttl(views._hash(1, 2)) <= 60_000


def test_view_tracking_snapshot_replaces_counts(m: Managers) -> None:
    views = m.view_tracking
    views.add(1, 2, views=100, likes=50)
    at = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.UTC)
    assert views.set(1, 2, ViewStats(views=7, shares=1, timestamp=at)) is True
    assert views.get(1, 2) == ViewStats(7, 0, 0, 1, at)
    assert views.delete(1, 2) is True
    assert views.get(1, 2) is None


# -- bot analysis -----------------------------------------------------------------------------


def test_bot_analysis_round_trip(m: Managers, cache: Any) -> None:
    bots = m.bot_analysis
    assert bots.get(3, 4) is None
    at = datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS)  # the repeated hour
    analysis = BotAnalysis(0.1 + 0.2, "block", "burst of views from one ASN", at)
    assert bots.set(3, 4, analysis) is True
    got = bots.get(3, 4)
    assert got == analysis
    assert got is not None and got.score == 0.30000000000000004  # float exact
    assert got.analysed_at is not None and got.analysed_at.tzinfo == PARIS
    assert got.analysed_at.utcoffset() == datetime.timedelta(hours=1)  # fold kept
    assert 295_000 < _raw(cache).pttl(bots._hash(3, 4)) <= 300_000  # policy bot_analysis
    assert bots.delete(3, 4) is True and bots.get(3, 4) is None


# -- rate limits --------------------------------------------------------------------------------


def test_rate_limit_counts_and_ttl_set_once(m: Managers, cache: Any) -> None:
    limits = m.rate_limits
    # A fixed window starts every 60 s (at an offset per key): keep these hits clear of a
    # window's edge, where the second would open a new window and count 1 again.
    left = limits.usage("tiktok", 42, limit=3, window=60).reset_seconds
    if left < 5:
        time.sleep(left + 0.1)
    first = limits.hit("tiktok", 42, limit=3, window=60)
    assert first.allowed and first.used == 1 and first.remaining == 2
    key = limits.limiter("tiktok", limit=3, window=60).key("42")
    ttl_after_first = _raw(cache).pttl(key)
    assert 0 < ttl_after_first <= 60_000  # the window expires
    time.sleep(0.05)
    assert limits.hit("tiktok", 42, limit=3, window=60).used == 2
    assert _raw(cache).pttl(key) < ttl_after_first  # a later hit does not push it back
    assert limits.count("tiktok", 42, limit=3, window=60) == 2
    assert limits.remaining("tiktok", 42, limit=3, window=60) == 1
    assert limits.hit("tiktok", 42, limit=3, window=60).allowed
    refused = limits.hit("tiktok", 42, limit=3, window=60)
    assert not refused.allowed and refused.remaining == 0
    reset_at = limits.reset_at("tiktok", 42, limit=3, window=60)
    assert 0 < (reset_at - datetime.datetime.now(datetime.UTC)).total_seconds() <= 60
    assert limits.count("instagram", 42, limit=3, window=60) == 0  # per platform
    assert limits.count("tiktok", 43, limit=3, window=60) == 0  # per user
    assert limits.reset("tiktok", 42, limit=3, window=60) is True
    assert limits.count("tiktok", 42, limit=3, window=60) == 0


def test_rate_limit_window_defaults_to_the_policy(m: Managers, settings: Any) -> None:
    settings.CACHE_TTL_RATE_LIMIT = 120
    assert m.rate_limits.limiter("youtube", limit=5).rate.period == 120


# -- daily payouts ------------------------------------------------------------------------------


def test_payouts_round_trip(m: Managers, cache: Any) -> None:
    payouts = m.payouts
    day = datetime.date(2024, 1, 15)
    assert payouts.get(day) is None
    at = datetime.datetime(2024, 1, 15, 23, 59, 59, 999999, tzinfo=TOKYO)
    payout = DailyPayout(day, Decimal("12345678901234567890.12"), 3, 2, at)
    assert payouts.set(payout) is True
    got = payouts.get(day)
    assert got == payout
    assert got is not None and str(got.total_amount) == "12345678901234567890.12"
    assert got.processed_at is not None and got.processed_at.tzinfo == TOKYO
    assert 86_395_000 < _raw(cache).pttl(payouts._hash(day)) <= 86_400_000  # daily_payout
    later = datetime.datetime(2024, 1, 16, 1, 0, tzinfo=datetime.UTC)
    marked = payouts.mark_processed(day, 2, at=later)
    assert marked == DailyPayout(day, payout.total_amount, 5, 0, later)
    assert payouts.mark_processed(datetime.date(2000, 1, 1)) is None  # no summary that day
    # Replacing drops fields the new summary does not have.
    assert payouts.set(DailyPayout(day, Decimal("0.10"))) is True
    assert payouts.get(day) == DailyPayout(day, Decimal("0.10"), 0, 0, None)
    assert payouts.delete(day) is True and payouts.get(day) is None


def test_mark_processed_counts(m: Managers) -> None:
    payouts = m.payouts
    day = datetime.date(2024, 2, 1)
    assert payouts.set(DailyPayout(day, Decimal("5.00"), 1, 3)) is True
    at = datetime.datetime(2024, 2, 1, 12, 0, tzinfo=datetime.UTC)
    # 0 is fine: nothing moves, the time is recorded (it used to reach Redis as "-0").
    assert payouts.mark_processed(day, 0, at=at) == DailyPayout(day, Decimal("5.00"), 1, 3, at)
    for bad in (-1, -5):
        with pytest.raises(ValueError, match="0 or more"):
            payouts.mark_processed(day, bad)
    for wrong in (1.5, "2", True):
        with pytest.raises(ValueError, match="int"):
            payouts.mark_processed(day, wrong)  # type: ignore[arg-type]
    assert payouts.get(day) == DailyPayout(day, Decimal("5.00"), 1, 3, at)  # untouched
    assert payouts.mark_processed(day, 3, at=at) == DailyPayout(day, Decimal("5.00"), 4, 0, at)


def test_payouts_refuse_inexact_money(m: Managers) -> None:
    with pytest.raises(TypeError, match="float"):
        m.payouts.set(DailyPayout(datetime.date(2024, 1, 1), 0.1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        m.payouts.set(DailyPayout(datetime.date(2024, 1, 1), Decimal("NaN")))


# -- feature flags ------------------------------------------------------------------------------


def test_feature_flags(m: Managers, cache: Any) -> None:
    flags = m.feature_flags
    assert flags.get("new-dashboard") is False
    assert flags.get("new-dashboard", default="off") == "off"
    assert flags.set("new-dashboard") is True
    assert flags.is_enabled("new-dashboard") is True
    assert flags.set("max-campaigns", 25) is True
    assert flags.set("banner", {"text": "hi"}, ttl=0.2) is True
    assert flags.all() == {"new-dashboard": True, "max-campaigns": 25, "banner": {"text": "hi"}}
    time.sleep(0.3)
    assert flags.all() == {"new-dashboard": True, "max-campaigns": 25}  # expired: gone
    assert flags.delete("max-campaigns") is True
    assert flags.all() == {"new-dashboard": True}
    assert flags.get("max-campaigns", 10) == 10


# -- per-user cache -----------------------------------------------------------------------------


def test_user_cache(m: Managers, target: Target) -> None:
    users = m.user_cache
    assert users.get(42, "profile") is None
    assert users.set(42, "profile", {"name": "Ada"}) is True
    assert users.set(42, "stats", [1, 2, 3], ttl=30) is True
    assert users.set(43, "profile", {"name": "Bob"}) is True
    assert users.get(42, "profile") == {"name": "Ada"}
    assert users.all(42) == {"profile": {"name": "Ada"}, "stats": [1, 2, 3]}
    assert users.delete(42, "stats") is True
    assert users.set(42, "stats", [4]) is True
    # Everything of one user in one call on one slot: no scan, one script.
    commands = target.count_commands(lambda: users.delete_all(42))
    assert commands.get("evalsha") == 1 and "scan" not in commands and "keys" not in commands
    assert users.get(42, "profile") is None and users.all(42) == {}
    assert users.get(43, "profile") == {"name": "Bob"}
    assert users.delete_all(42) == 0


def test_a_users_keys_share_one_cluster_slot(m: Managers, cache: Any) -> None:
    km = cache.keys_manager
    keys = [
        cache.make_key(km.user(42, "cache")),
        cache.make_key(km.user(42, "cache", "profile")),
        m.sessions._store.index_key(42),
        m.auth_tokens._store.index_key(42),
        m.auth_tokens._user_key(42, "auth"),
    ]
    assert all("{user:42}" in key for key in keys)
    assert len({_slot(key) for key in keys}) == 1
    assert _slot(cache.make_key(km.user(43, "cache"))) != _slot(keys[0])


def test_user_cache_index_lives_as_long_as_its_longest_entry(m: Managers, cache: Any) -> None:
    users = m.user_cache
    users.set(7, "a", 1, ttl=60)
    users.set(7, "b", 2, ttl=1)
    index = cache.make_key(cache.keys_manager.user(7, "cache"))
    assert _raw(cache).pttl(index) > 55_000
    users.set(7, "c", 3, ttl=None)
    assert _raw(cache).pttl(index) == -1  # an entry that never expires: neither does the index


# -- auth tokens --------------------------------------------------------------------------------


def test_auth_tokens(m: Managers, cache: Any) -> None:
    tokens = m.auth_tokens
    assert tokens.get("nope") is None
    assert tokens.set("secret-token-1", 42, {"scopes": ["read"]}) is True
    assert tokens.set("secret-token-2", 42) is True
    assert tokens.set("secret-token-3", 43) is True
    info = tokens.get("secret-token-1")
    assert info is not None and info.user_id == "42" and info.data == {"scopes": ["read"]}
    assert tokens.count_user(42) == 2
    # The token itself is never part of a key.
    key = tokens._store.entry_key(token_id("secret-token-1"))
    assert "secret-token" not in key and _raw(cache).exists(key)
    assert tokens.clear("secret-token-2") is True and tokens.get("secret-token-2") is None
    assert tokens.count_user(42) == 1
    assert tokens.clear_user(42) == 1
    assert tokens.get("secret-token-1") is None
    assert tokens.get("secret-token-3") is not None


def test_user_auth_data(m: Managers, cache: Any) -> None:
    tokens = m.auth_tokens
    assert tokens.get_user_data(42, "none") == "none"
    assert tokens.set_user_data(42, {"perms": ["campaign.add"]}) is True
    assert tokens.get_user_data(42) == {"perms": ["campaign.add"]}
    assert 86_395_000 < _raw(cache).pttl(tokens._user_key(42, "auth")) <= 86_400_000
    assert tokens.clear_user_data(42) is True
    assert tokens.get_user_data(42) is None
