"""TTL policies for any data type: ``CACHE_TTL_<NAME>`` gives ``ttl.policy("<name>")``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from django_creator_cache import conf
from django_creator_cache.ttl import policy


def test_any_name_set_in_settings_is_a_policy(settings: Any) -> None:
    settings.CACHE_TTL_CAMPAIGN_STATS = 900
    assert policy("campaign_stats") == 900
    assert policy("CAMPAIGN_STATS") == 900


def test_a_policy_may_say_its_unit(settings: Any) -> None:
    settings.CACHE_TTL_LEADERBOARD = "15m"
    assert policy("leaderboard") == 900
    settings.CACHE_TTL_SESSION = "2d"  # built-in ones too
    assert policy("session") == 172800


def test_a_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_PROMOTER_PROFILE", "1h")
    assert policy("promoter_profile") == 3600


def test_settings_win_over_the_environment(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_FEED", "60")
    settings.CACHE_TTL_FEED = 30
    assert policy("feed") == 30


def test_read_when_used(settings: Any) -> None:
    settings.CACHE_TTL_FEED = 10
    assert policy("feed") == 10
    settings.CACHE_TTL_FEED = 20
    assert policy("feed") == 20


def test_an_unset_unknown_name_is_refused_naming_the_setting() -> None:
    with pytest.raises(KeyError, match="set CACHE_TTL_NO_SUCH_THING"):
        policy("no_such_thing")


def test_built_in_policies_keep_their_defaults() -> None:
    assert {name: policy(name) for name in conf.TTL_POLICY_DEFAULTS} == conf.TTL_POLICY_DEFAULTS


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-5, "must not be negative"),
        ("soon", "must be whole seconds or a duration"),
        ("1.5", "whole"),
    ],
)
def test_a_bad_policy_of_your_own_fails_the_checks_naming_it(
    settings: Any, value: Any, message: str
) -> None:
    settings.CACHE_TTL_CAMPAIGN_STATS = value
    messages = [m.msg for m in run_checks(tags=["caches"]) if m.id == "django_creator_cache.E004"]
    assert any(m.startswith("CACHE_TTL_CAMPAIGN_STATS") and message in m for m in messages), (
        messages
    )
    with pytest.raises(ImproperlyConfigured, match="CACHE_TTL_CAMPAIGN_STATS"):
        policy("campaign_stats")


def test_a_bad_policy_from_the_environment_fails_the_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHE_TTL_FEED", "forever")
    messages = [m.msg for m in run_checks(tags=["caches"]) if m.id == "django_creator_cache.E004"]
    assert any(m.startswith("CACHE_TTL_FEED") for m in messages), messages


def test_decorators_take_a_policy_of_your_own(settings: Any) -> None:
    from django_creator_cache.cache_aside import cached
    from django_creator_cache.views_cache import cache_response

    settings.CACHE_TTL_LEADERBOARD = "90s"
    cached(policy="leaderboard")  # no error: CACHE_TTL_LEADERBOARD is set
    cache_response(policy="leaderboard")
    for make in (cached, cache_response):
        with pytest.raises(ValueError, match="unknown TTL policy 'leaderbord'"):
            make(policy="leaderbord")  # a typo fails when declared
