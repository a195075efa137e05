"""Rate limiting without Redis: rates, client IP behind proxies, key functions, checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest
from django.test import RequestFactory

from django_creator_cache.exceptions import CacheError, Ratelimited
from django_creator_cache.ratelimit import Limiter, Rate, Usage, client_ip, ip_group, parse_rate
from django_creator_cache.ratelimit.keys import resolve_key

BACKEND = "django_creator_cache.backend.RedisCache"
factory = RequestFactory()


def request(remote: str = "203.0.113.9", forwarded: str | None = None, **meta: Any) -> HttpRequest:
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return factory.get("/", REMOTE_ADDR=remote, **meta)


# -- rates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("100/h", 100, 3600),
        ("10/5m", 10, 300),
        ("5/s", 5, 1),
        ("7/d", 7, 86400),
        ("3/30s", 3, 30),
        (" 20 / 2H ", 20, 7200),
        # Django REST framework's spellings (its DEFAULT_THROTTLE_RATES).
        ("100/hour", 100, 3600),
        ("5/min", 5, 60),
        ("1000/day", 1000, 86400),
        ("2/sec", 2, 1),
        ("30/minutes", 30, 60),
        ("10/5minutes", 10, 300),
    ],
)
def test_rates_parse(text: str, limit: int, period: int) -> None:
    assert parse_rate(text) == Rate(limit, period)


@pytest.mark.parametrize(
    "text", ["100", "h", "0/h", "10/5x", "abc/h", "10/0m", "-1/s", "", "10/month", "5/hx"]
)
def test_bad_rates_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_limiter_refuses_unknown_algorithm_and_bad_cost() -> None:
    with pytest.raises(ValueError, match="sliding_window, fixed_window, token_bucket"):
        Limiter("g", "1/s", algorithm="leaky")
    with pytest.raises(ValueError, match="cost"):
        Limiter("g", "3/s").hit("x", cost=4)


# -- client IP ---------------------------------------------------------------------------------


def test_forged_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    key = resolve_key("ip")
    honest = request("203.0.113.9")
    forged = request("203.0.113.9", forwarded="198.51.100.1")
    assert client_ip(forged) == "203.0.113.9"
    assert key(forged) == key(honest) == "ip:203.0.113.9"


def test_hop_count_takes_the_address_the_first_trusted_proxy_saw(settings: Any) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = 1
    # nginx (10.0.0.2) appended the peer it saw; the client forged the first entry.
    assert client_ip(request("10.0.0.2", forwarded="1.1.1.1, 203.0.113.7")) == "203.0.113.7"
    assert client_ip(request("10.0.0.2")) == "10.0.0.2"  # no header: the peer itself
    settings.RATELIMIT_TRUSTED_PROXIES = 2
    chain = "1.1.1.1, 198.51.100.4, 10.0.0.3"  # forged, client, first proxy
    assert client_ip(request("10.0.0.2", forwarded=chain)) == "198.51.100.4"


def test_trusted_networks_walk_from_the_right(settings: Any) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    chain = "6.6.6.6, 203.0.113.7, 10.1.1.1"
    assert client_ip(request("10.0.0.2", forwarded=chain)) == "203.0.113.7"
    # A peer outside the trusted networks is the client, whatever it claims.
    assert client_ip(request("198.51.100.9", forwarded="10.1.1.1")) == "198.51.100.9"
    # Ports and brackets are accepted; IPv4-mapped IPv6 is the IPv4 address.
    assert client_ip(request("fd00::1", forwarded="[2001:db8::5]:443")) == "2001:db8::5"
    assert client_ip(request("::ffff:10.0.0.2", forwarded="203.0.113.7:5000")) == "203.0.113.7"
    # An entry that is not an address ends the chain at the last trusted hop's view.
    assert client_ip(request("10.0.0.2", forwarded="unknown, 10.1.1.1")) == "10.1.1.1"


def test_trusted_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATELIMIT_TRUSTED_PROXIES", "192.168.0.0/16, 10.0.0.0/8")
    assert client_ip(request("192.168.1.1", forwarded="203.0.113.7")) == "203.0.113.7"
    monkeypatch.setenv("RATELIMIT_TRUSTED_PROXIES", "1")
    assert client_ip(request("198.51.100.1", forwarded="203.0.113.8")) == "203.0.113.8"


def test_unix_socket_peer_counts_as_a_trusted_hop(settings: Any) -> None:
    assert client_ip(request("", forwarded="203.0.113.7")) == ""
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("", forwarded="203.0.113.7")) == "203.0.113.7"


def test_ipv6_clients_are_limited_per_64_and_ipv4_per_address(settings: Any) -> None:
    key = resolve_key("ip")
    a = key(request("2001:db8:1:2::1"))
    b = key(request("2001:db8:1:2:ffff:ffff:ffff:ffff"))
    c = key(request("2001:db8:1:3::1"))
    assert a == b == "ip:2001:db8:1:2::/64"
    assert c != a
    assert key(request("203.0.113.1")) != key(request("203.0.113.2"))
    settings.RATELIMIT_IPV6_PREFIX = 128
    assert key(request("2001:db8:1:2::1")) != key(request("2001:db8:1:2::2"))
    settings.RATELIMIT_IPV4_PREFIX = 24
    assert ip_group("203.0.113.77") == "203.0.113.0/24"


# -- key functions -----------------------------------------------------------------------------


def test_header_and_query_keys_hash_values_and_missing_values_share_a_bucket() -> None:
    key = resolve_key("header:X-Api-Key")
    secret = key(request(HTTP_X_API_KEY="sk_live_123"))
    assert secret is not None and "sk_live_123" not in secret
    assert secret == key(request("198.51.100.1", HTTP_X_API_KEY="sk_live_123"))
    assert secret != key(request(HTTP_X_API_KEY="sk_live_124"))
    assert key(request()) == key(request(HTTP_X_API_KEY=""))  # omitting it is no escape
    get = resolve_key("get:token")
    assert get(factory.get("/?token=abc")) == get(factory.get("/?token=abc", REMOTE_ADDR="::1"))
    assert get(factory.get("/?token=abc")) != get(factory.get("/?token=abd"))


def test_user_keys() -> None:
    anonymous = request()
    anonymous.user = SimpleNamespace(is_authenticated=False, pk=None)  # type: ignore[attr-defined]
    member = request()
    member.user = SimpleNamespace(is_authenticated=True, pk=42)  # type: ignore[attr-defined]
    assert resolve_key("user")(member) == "user:types.SimpleNamespace:42"
    staff = request()
    staff.user = User(pk=42, username="staff")  # type: ignore[attr-defined]
    assert resolve_key("user")(staff) == "user:42"  # the project's user model: its pk
    assert resolve_key("user")(anonymous) is None  # the limit does not apply
    assert resolve_key("user_or_ip")(anonymous) == "ip:203.0.113.9"
    assert resolve_key("user_or_ip")(member) == "user:types.SimpleNamespace:42"
    keyless = request()
    keyless.user = SimpleNamespace(is_authenticated=True, pk=None)  # type: ignore[attr-defined]
    assert resolve_key("user")(keyless) is None  # no name to count under ("user:None" before)
    assert resolve_key("user_or_ip")(keyless) == "ip:203.0.113.9"
    with pytest.raises(ImproperlyConfigured, match="AuthenticationMiddleware"):
        resolve_key("user")(request())


def test_callable_and_unknown_keys() -> None:
    def by_path(req: HttpRequest) -> str:
        return req.path

    assert resolve_key(by_path) is by_path
    for bad in ("ip6", "header:", "post:field", "userx"):
        with pytest.raises(ValueError, match="unknown rate-limit key"):
            resolve_key(bad)


def test_ratelimited_is_a_permission_denied_carrying_the_usage() -> None:
    usage = Usage(False, 10, 0, 30.0, 12.5, "api")
    exc = Ratelimited(usage)
    assert isinstance(exc, PermissionDenied) and isinstance(exc, CacheError)
    assert exc.usage is usage and "'api'" in str(exc) and "12.5s" in str(exc)


# -- system checks -----------------------------------------------------------------------------


def _ids(settings: Any) -> list[str]:
    return [f"{m.id} {m.msg}" for m in run_checks(tags=["caches"]) if "creator" in (m.id or "")]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RATELIMIT_TRUSTED_PROXIES", ["10.0.0.0/33"], "E020 RATELIMIT_TRUSTED_PROXIES"),
        ("RATELIMIT_TRUSTED_PROXIES", -1, "E020 RATELIMIT_TRUSTED_PROXIES"),
        ("RATELIMIT_TRUSTED_PROXIES", "proxy.local", "E020 RATELIMIT_TRUSTED_PROXIES"),
        ("RATELIMIT_IPV6_PREFIX", 129, "E021 RATELIMIT_IPV6_PREFIX must be at most 128"),
        ("RATELIMIT_IPV4_PREFIX", 33, "E021 RATELIMIT_IPV4_PREFIX must be at most 32"),
        ("RATELIMIT_IPV4_PREFIX", -1, "E004 RATELIMIT_IPV4_PREFIX must not be negative"),
        ("RATELIMIT_VIEW", "nope.views.limited", "E022 RATELIMIT_VIEW 'nope.views.limited'"),
        ("RATELIMIT_VIEW", "django_creator_cache.conf.DEFAULTS", "E022 RATELIMIT_VIEW"),
        ("RATELIMIT_CACHE", "missing", "E023 RATELIMIT_CACHE 'missing' is not an alias"),
        ("RATELIMIT_CACHE", "local", "E023 RATELIMIT_CACHE 'local' uses"),
        ("RATELIMIT_FAIL_OPEN", "maybe", "E004 RATELIMIT_FAIL_OPEN must be bool"),
        ("RATELIMIT_HEADERS", "sometimes", "E004 RATELIMIT_HEADERS must be bool"),
    ],
)
def test_bad_ratelimit_settings_fail_the_checks(
    settings: Any, name: str, value: Any, expected: str
) -> None:
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": "redis://127.0.0.1:6379/0"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    setattr(settings, name, value)
    messages = _ids(settings)
    assert any(m.startswith(f"django_creator_cache.{expected}") for m in messages), messages


def test_good_ratelimit_settings_pass_the_checks(settings: Any) -> None:
    settings.CACHES = {"limits": {"BACKEND": BACKEND, "LOCATION": "redis://127.0.0.1:6379/1"}}
    settings.RATELIMIT_CACHE = "limits"
    settings.RATELIMIT_TRUSTED_PROXIES = ("10.0.0.0/8", "2001:db8::/32")
    settings.RATELIMIT_VIEW = "django_creator_cache.ratelimit.views.raise_ratelimited"
    settings.RATELIMIT_IPV6_PREFIX = 56
    assert _ids(settings) == []
    settings.RATELIMIT_TRUSTED_PROXIES = 2
    assert _ids(settings) == []
