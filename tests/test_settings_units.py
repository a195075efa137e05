"""Duration settings that cannot mislead: explicit units, and a bare number that is implausible
in seconds (milliseconds meant for another cache layer) fails the checks naming the setting."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from django_creator_cache import conf, health
from django_creator_cache.backend.options import resolve
from tests.redis_servers import RedisServer
from tests.slow_proxy import SlowProxy

BACKEND = "django_creator_cache.backend.RedisCache"
SETTINGS = sorted(conf.DURATION_LIMITS)
# OPTIONS key -> the package setting it stands for.
OPTION_KEYS = {
    "SOCKET_CONNECT_TIMEOUT": "REDIS_CONNECT_TIMEOUT",
    "SOCKET_TIMEOUT": "REDIS_COMMAND_TIMEOUT",
    "RETRY_DELAY": "REDIS_RETRY_DELAY",
}


def _messages(check_id: str) -> list[str]:
    return [m.msg for m in run_checks(tags=["caches"]) if m.id == check_id]


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5s", 1.5),
        (" 250MS ", 0.25),
        ("1m", 60.0),
        (timedelta(milliseconds=300), 0.3),
        (0.75, 0.75),
        (2, 2.0),
        ("0.1", 0.1),
    ],
)
@pytest.mark.parametrize("name", SETTINGS)
def test_duration_settings_take_units(settings: Any, name: str, given: Any, seconds: float) -> None:
    setattr(settings, name, given)
    assert conf.read(name) == pytest.approx(seconds)
    assert not [
        m for m in run_checks(tags=["caches"]) if m.id and "creator" in m.id and m.is_serious()
    ]


@pytest.mark.parametrize("name", SETTINGS)
def test_a_bare_implausible_number_is_a_check_error_naming_the_setting(
    settings: Any, name: str
) -> None:
    setattr(settings, name, 5000)
    messages = _messages("django_creator_cache.E006")
    assert len(messages) == 1 and messages[0].startswith(f"{name} is 5000"), messages
    assert "'5000ms'" in messages[0]
    with pytest.raises(conf.ImplausibleDuration, match=name):
        conf.read(name)  # and at first use, where no check ran (gunicorn runs none)


@pytest.mark.parametrize("name", SETTINGS)
def test_the_limit_is_where_it_is_documented(settings: Any, name: str) -> None:
    limit = conf.DURATION_LIMITS[name]
    setattr(settings, name, limit * 0.99)
    assert conf.read(name) == pytest.approx(limit * 0.99)
    setattr(settings, name, limit)
    assert _messages("django_creator_cache.E006")


@pytest.mark.parametrize("name", SETTINGS)
def test_a_large_value_with_its_unit_is_taken_as_meant(settings: Any, name: str) -> None:
    setattr(settings, name, "120s")
    assert conf.read(name) == 120.0
    assert _messages("django_creator_cache.E006") == []


@pytest.mark.parametrize("name", SETTINGS)
def test_the_environment_is_held_to_the_same_rule(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "250ms")
    assert conf.read(name) == 0.25
    monkeypatch.setenv(name, "5000")
    assert any(m.startswith(name) for m in _messages("django_creator_cache.E006"))


@pytest.mark.parametrize("name", SETTINGS)
def test_garbage_and_negatives_stay_e004(settings: Any, name: str) -> None:
    setattr(settings, name, "soon")
    assert any(f"{name} must be a duration" in m for m in _messages("django_creator_cache.E004"))
    setattr(settings, name, -1)
    assert any(f"{name} must not be negative" in m for m in _messages("django_creator_cache.E004"))


def test_options_take_units() -> None:
    options = resolve(
        "redis://h",
        {
            "SOCKET_TIMEOUT": "250ms",
            "SOCKET_CONNECT_TIMEOUT": timedelta(seconds=2),
            "RETRY_DELAY": "20ms",
        },
    )
    assert options.command_timeout == 0.25
    assert options.connect_timeout == 2.0
    assert options.retry_delay == pytest.approx(0.02)


@pytest.mark.parametrize(("key", "setting"), sorted(OPTION_KEYS.items()))
def test_a_bare_implausible_option_is_a_check_error_naming_it(
    settings: Any, key: str, setting: str
) -> None:
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": "redis://h", "OPTIONS": {key: 2000}}
    }
    messages = _messages("django_creator_cache.E006")
    assert any(f"CACHES['default']: CACHES OPTIONS {key} is 2000" in m for m in messages), messages
    with pytest.raises(ImproperlyConfigured, match=key):
        resolve("redis://h", {key: 2000})
    # The same number with its unit is fine, and so is the setting's own limit minus a bit.
    assert resolve("redis://h", {key: "2000ms"})
    assert resolve("redis://h", {key: conf.DURATION_LIMITS[setting] / 2})


def test_settings_are_read_when_used(settings: Any) -> None:
    settings.REDIS_COMMAND_TIMEOUT = "300ms"
    assert resolve("redis://h", {}).command_timeout == 0.3
    settings.REDIS_COMMAND_TIMEOUT = "2s"
    assert resolve("redis://h", {}).command_timeout == 2.0


# -- the unit reaches the socket: a server that accepts connections but never answers ----------


def test_a_millisecond_timeout_is_honoured_by_a_call_to_a_silent_server(
    settings: Any, own_redis_server: RedisServer
) -> None:
    """Read as seconds, "300ms" would be 300 s: the call would still be waiting for the
    proxy's 30 s delay. It returns a miss instead."""
    with SlowProxy(own_redis_server.address, delay=30) as silent:
        settings.CACHES = {
            "default": {
                "BACKEND": BACKEND,
                "LOCATION": silent.url,
                "OPTIONS": {"SOCKET_TIMEOUT": "300ms", "SOCKET_CONNECT_TIMEOUT": "300ms"},
            }
        }
        cache = caches["default"]
        assert cache.options.command_timeout == 0.3
        start = time.monotonic()
        assert cache.get("anything", "miss") == "miss"
        assert time.monotonic() - start < 15  # long before the reply would come


def test_the_health_timeout_unit_is_honoured(settings: Any, own_redis_server: RedisServer) -> None:
    settings.CACHE_HEALTH_TIMEOUT = "200ms"
    settings.CACHE_HEALTH_RETRIES = 0
    with SlowProxy(own_redis_server.address, delay=30) as silent:
        settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": silent.url}}
        start = time.monotonic()
        result = health.check(caches["default"])
        assert result["healthy"] is False and "Timeout" in result["error"], result
        assert time.monotonic() - start < 15
