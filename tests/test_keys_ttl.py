"""Keys (prefix, separator, hashing of long keys) and TTL parsing/policies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.keys import glob_escape, shorten
from django_creator_cache.ttl import jittered, parse_ttl, policy

BACKEND = "django_creator_cache.backend.RedisCache"


def _backend(settings: Any, **entry: Any) -> Any:
    # No connection is opened: building keys needs no server.
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": "redis://127.0.0.1:1/0", **entry}
    }
    return caches["default"]


def test_short_keys_are_unchanged() -> None:
    assert shorten("p:1:abc", 250) == "p:1:abc"


def test_long_keys_are_hashed_to_the_limit_stably_and_keep_their_head() -> None:
    long_a = "p:1:" + "a" * 400 + "x"
    long_b = "p:1:" + "a" * 400 + "y"
    short_a = shorten(long_a, 250)
    assert len(short_a) == 250
    assert short_a == shorten(long_a, 250)
    assert short_a != shorten(long_b, 250)
    assert short_a.startswith("p:1:aaa")


def test_unicode_long_keys_hash_without_error() -> None:
    key = "p:1:" + "清🙂" * 300
    assert len(shorten(key, 100)) == 100


def test_backend_make_key_uses_prefix_version_and_limit(settings: Any) -> None:
    cache = _backend(settings, KEY_PREFIX="site", OPTIONS={"MAX_KEY_LENGTH": 80})
    assert cache.make_key("k") == "site:1:k"
    assert cache.make_key("k", version=3) == "site:3:k"
    hashed = cache.make_key("k" * 500)
    assert len(hashed) == 80 and hashed.startswith("site:1:kkk")


def test_max_cache_key_length_setting_is_read_when_used(settings: Any) -> None:
    settings.MAX_CACHE_KEY_LENGTH = 100
    cache = _backend(settings)
    assert len(cache.make_key("z" * 300)) == 100
    settings.MAX_CACHE_KEY_LENGTH = 120
    assert len(cache.make_key("z" * 300)) == 120


def test_custom_separator_applies_to_backend_and_key_manager(settings: Any) -> None:
    cache = _backend(settings, KEY_PREFIX="site", OPTIONS={"KEY_SEPARATOR": "|"})
    manager = cache.keys_manager
    assert manager.custom("analytics", "daily", "2024-01-15") == "analytics|daily|2024-01-15"
    assert manager.full("analytics", 7) == "site|1|analytics|7"
    assert cache.reverse_key("site|1|analytics|7") == "analytics|7"


def test_key_manager_parts_and_patterns(settings: Any) -> None:
    manager = _backend(settings).keys_manager
    assert manager.custom("analytics", "daily", "2024-01-15") == "analytics:daily:2024-01-15"
    assert manager.pattern("campaigns", "a*b") == "campaigns:a\\*b:*"
    assert manager.user_all(42) == "{user:42}:*"  # what user(42, ...) keys start with
    assert manager.user(42, "profile").startswith(manager.user_all(42)[:-1])
    with pytest.raises(ValueError):
        manager.custom()


def test_glob_escape_escapes_every_special_character() -> None:
    assert glob_escape("a*b?c[d]e\\") == "a\\*b\\?c\\[d\\]e\\\\"


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        (timedelta(minutes=2), 120.0),
        (None, None),
    ],
)
def test_parse_ttl(given: Any, seconds: float | None) -> None:
    assert parse_ttl(given) == seconds


@pytest.mark.parametrize("bad", ["", "1x", "h", "1h 30q", True, [1]])
def test_parse_ttl_rejects_garbage_clearly(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_ttl(bad)


def test_ttl_policies_have_defaults_and_are_overridable(settings: Any) -> None:
    assert policy("session") == 86400
    assert policy("view_tracking") == 60
    assert policy("bot_analysis") == 300
    assert policy("rate_limit") == 3600
    assert policy("daily_payout") == 86400
    assert policy("default") == 3600
    settings.CACHE_TTL_VIEW_TRACKING = 15
    assert policy("view_tracking") == 15
    with pytest.raises(KeyError, match="unknown TTL policy"):
        policy("nope")


def test_ttl_policy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_BOT_ANALYSIS", "42")
    assert policy("bot_analysis") == 42


def test_default_timeout_is_the_default_policy_unless_timeout_given(settings: Any) -> None:
    assert _backend(settings).default_timeout == 3600
    settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": "redis://h/0", "TIMEOUT": 5}}
    assert caches["default"].default_timeout == 5


def test_jitter_spreads_within_bounds() -> None:
    values = {jittered(100, 0.2) for _ in range(50)}
    assert all(100 <= v <= 120 for v in values if v is not None)
    assert len(values) > 1
    assert jittered(None) is None
    assert jittered(0) == 0


def test_unencodable_keys_get_distinct_stable_stand_ins() -> None:
    from django_creator_cache.keys import encodable

    assert encodable("plain-é-清") == "plain-é-清"
    a, b = encodable("k-\ud800"), encodable("k-\ud801")
    assert a != b and a == encodable("k-\ud800")
    a.encode("utf-8")  # now sendable
