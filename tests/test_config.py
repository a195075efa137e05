"""Configuration: CACHES options, environment, and the system checks naming the setting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from django_creator_cache.backend.options import redact, resolve
from django_creator_cache.env import Secret, cache_from_env, redis_url_from_env

BACKEND = "django_creator_cache.backend.RedisCache"


def _errors(settings: Any, **entry: Any) -> list[str]:
    settings.CACHES = {"default": {"BACKEND": BACKEND, **entry}}
    return [f"{m.id} {m.msg}" for m in run_checks(tags=["caches"]) if m.id and "creator" in m.id]


def test_valid_configurations_pass_the_checks(settings: Any) -> None:
    assert _errors(settings, LOCATION="redis://127.0.0.1:6379/0") == []
    assert _errors(settings, LOCATION="rediss://user:pw@h:6380/1") == []
    assert _errors(settings, LOCATION="unix:///tmp/redis.sock") == []
    assert _errors(settings, LOCATION="redis://a:1,redis://b:2", OPTIONS={"MODE": "cluster"}) == []
    assert (
        _errors(
            settings,
            LOCATION="redis://mymaster/0",
            OPTIONS={"MODE": "sentinel", "SENTINELS": [("127.0.0.1", 26379)]},
        )
        == []
    )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"LOCATION": "http://localhost:6379"}, "E001 CACHES['default']: CACHES LOCATION"),
        ({"LOCATION": ""}, "E001"),
        ({"LOCATION": "redis://h", "OPTIONS": {"MODE": "galaxy"}}, "MODE must be one of"),
        ({"LOCATION": "redis://h", "OPTIONS": {"MODE": "sentinel"}}, "SENTINELS"),
        ({"LOCATION": "redis://h", "OPTIONS": {"SERIALIZER": "nope.Serializer"}}, "E002"),
        ({"LOCATION": "redis://h", "OPTIONS": {"COMPRESSOR": "nope.Compressor"}}, "E003"),
        ({"LOCATION": "redis://h", "OPTIONS": {"SOCKET_TIMEOUT": "fast"}}, "SOCKET_TIMEOUT"),
        ({"LOCATION": "redis://h", "OPTIONS": {"MAX_CONNECTIONS": 0}}, "MAX_CONNECTIONS"),
        ({"LOCATION": "redis://h", "TIMEOUT": -5}, "TIMEOUT must be None or >= 0"),
    ],
)
def test_bad_cache_configuration_fails_the_checks_naming_the_setting(
    settings: Any, entry: dict[str, Any], expected: str
) -> None:
    errors = _errors(settings, **entry)
    assert errors, entry
    assert any(expected in e for e in errors), errors


def test_checks_ignore_other_backends(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "x"}
    }
    assert not [m for m in run_checks(tags=["caches"]) if "creator" in (m.id or "")]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CACHE_TTL_SESSION", -1, "CACHE_TTL_SESSION must not be negative"),
        ("REDIS_COMMAND_TIMEOUT", "soon", "REDIS_COMMAND_TIMEOUT must be a duration"),
        ("MAX_CACHE_KEY_LENGTH", 10, "MAX_CACHE_KEY_LENGTH must be at least 64"),
        ("CACHE_COMPRESSION_ENABLED", "maybe", "CACHE_COMPRESSION_ENABLED must be bool"),
    ],
)
def test_bad_package_settings_fail_the_checks(
    settings: Any, name: str, value: Any, expected: str
) -> None:
    setattr(settings, name, value)
    messages = [m.msg for m in run_checks(tags=["caches"]) if m.id == "django_creator_cache.E004"]
    assert any(expected in m for m in messages), messages


def test_bad_environment_setting_fails_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_RETRY_ATTEMPTS", "many")
    messages = [m.msg for m in run_checks(tags=["caches"]) if m.id == "django_creator_cache.E004"]
    assert any("REDIS_RETRY_ATTEMPTS" in m for m in messages)


def test_package_settings_fill_in_options_and_options_win(settings: Any) -> None:
    settings.REDIS_COMMAND_TIMEOUT = 2.5
    settings.REDIS_RETRY_ATTEMPTS = 4
    settings.CACHE_COMPRESSION_ENABLED = True
    opts = resolve("redis://h", {"SOCKET_CONNECT_TIMEOUT": 0.3})
    assert opts.command_timeout == 2.5
    assert opts.connect_timeout == 0.3
    assert opts.retry_attempts == 4
    assert opts.compressor == "zlib"
    assert resolve("redis://h", {"COMPRESSOR": "lzma"}).compressor == "lzma"


def test_cluster_mode_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER_ENABLED", "true")
    assert resolve("redis://h:7000", {}).mode == "cluster"
    monkeypatch.setenv("REDIS_CLUSTER_ENABLED", "0")
    assert resolve("redis://h:7000", {}).mode == "single"


def test_location_may_list_several_nodes() -> None:
    opts = resolve(["redis://a:1", "redis://b:2"], {"MODE": "cluster"})
    assert opts.urls == ["redis://a:1", "redis://b:2"]
    assert resolve("redis://a:1, redis://b:2", {"CLUSTER": True}).urls == [
        "redis://a:1",
        "redis://b:2",
    ]


def test_redact_hides_passwords() -> None:
    assert redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("rediss://user:s3cret@h/0") == "rediss://user:***@h/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    # redis-py also reads a password from the query (the way for a unix socket).
    assert redact("redis://h:6379/0?password=s3cret") == "redis://h:6379/0?password=***"
    assert redact("unix:///run/r.sock?db=1&password=s3cret") == (
        "unix:///run/r.sock?db=1&password=***"
    )
    opts = resolve("redis://:s3cret@h:1/0,redis://:s3cret@g:2/0", {"CLUSTER": True})
    assert "s3cret" not in opts.safe_location
    with pytest.raises(ImproperlyConfigured) as info:
        resolve("http://:s3cret@h/0", {})
    assert "s3cret" not in str(info.value)


def test_cache_from_env_url_and_parts() -> None:
    assert cache_from_env({"REDIS_URL": "rediss://h:6380/2"})["LOCATION"] == "rediss://h:6380/2"
    entry = cache_from_env(
        {
            "REDIS_HOST": "cache.internal",
            "REDIS_PORT": "6380",
            "REDIS_PASSWORD": "p@ss/word",
            "REDIS_DB": "3",
            "REDIS_KEY_PREFIX": "creators",
            "REDIS_CLUSTER_ENABLED": "yes",
        }
    )
    assert entry["LOCATION"] == "redis://cache.internal:6380/3"
    assert entry["OPTIONS"]["PASSWORD"] == "p@ss/word"
    assert entry["KEY_PREFIX"] == "creators"
    assert entry["OPTIONS"]["MODE"] == "cluster"
    assert entry["BACKEND"] == BACKEND
    assert cache_from_env({"CACHE_KEY_PREFIX": "x"})["KEY_PREFIX"] == "x"
    assert redis_url_from_env({}) is None
    assert cache_from_env({})["LOCATION"] == "redis://127.0.0.1:6379/0"


def test_cache_from_env_keeps_the_password_out_of_location() -> None:
    """Django's debug page and ``diffsettings`` print LOCATION; they hide PASSWORD keys."""
    from django.views.debug import SafeExceptionReporterFilter

    secret = "p@ss/w0rd:x"
    for env in (
        {"REDIS_HOST": "h", "REDIS_PASSWORD": secret},
        {"REDIS_URL": "redis://:p%40ss%2Fw0rd%3Ax@h:6379/0"},
        {"REDIS_URL": "rediss://ada:p%40ss%2Fw0rd%3Ax@h:6380/2"},
        {"REDIS_URL": "redis://h:6379/0", "REDIS_PASSWORD": secret},
        {"REDIS_URL": "redis://h:6379/0?password=p%40ss%2Fw0rd%3Ax"},
        {"REDIS_URL": "unix:///run/redis.sock?db=0&password=p%40ss%2Fw0rd%3Ax"},
    ):
        entry = cache_from_env(env)
        assert entry["OPTIONS"]["PASSWORD"] == secret
        assert "w0rd" not in entry["LOCATION"] and "w0rd" not in redact(entry["LOCATION"])
        # What the debug page shows of CACHES: PASSWORD is cleansed, nothing else is.
        shown = SafeExceptionReporterFilter().cleanse_setting("CACHES", {"default": entry})
        assert "w0rd" not in repr(shown) and "w0rd" not in str(shown)
        assert "w0rd" not in repr(entry) and "w0rd" not in str(entry)
    assert repr(Secret("a")) == repr(Secret("a")) != repr(Secret("b"))
    assert cache_from_env({"REDIS_URL": "rediss://ada:pw@h:6380/2"})["LOCATION"] == (
        "rediss://ada@h:6380/2"
    )
    assert "PASSWORD" not in cache_from_env({"REDIS_URL": "redis://h:1/0"})["OPTIONS"]


def test_cache_from_env_connects_to_a_password_protected_server(settings: Any) -> None:
    from django.core.cache import caches

    from tests.redis_servers import RedisServer

    secret = "env-s3cret/pw"
    with RedisServer() as server:
        with server.client() as admin:
            admin.config_set("requirepass", secret)
        env = {"REDIS_HOST": server.host, "REDIS_PORT": str(server.port), "REDIS_PASSWORD": secret}
        settings.CACHES = {"default": cache_from_env(env)}
        cache = caches["default"]
        assert cache.set("k", "v") is True
        assert cache.get("k") == "v"
        assert cache.health()["healthy"] is True
        assert asyncio.run(cache.aget("k")) == "v"  # the native async client too
        with server.client(password=secret) as admin:
            assert admin.exists(cache.make_key("k")) == 1
        # diffsettings prints repr() of each setting: the password is not in it.
        assert secret not in repr(settings.CACHES) and secret not in str(settings.CACHES)
        assert secret not in cache.options.safe_location


def test_unknown_options_are_flagged_by_name(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": "redis://h/0",
            "OPTIONS": {"SOCKET_TIMOUT": 1, "CLIENT_CLASS": "x", "SOCKET_TIMEOUT": 1},
        }
    }
    warnings = [m for m in run_checks(tags=["caches"]) if m.id == "django_creator_cache.W001"]
    assert len(warnings) == 1
    assert "CLIENT_CLASS, SOCKET_TIMOUT" in warnings[0].msg
