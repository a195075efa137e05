"""Django REST framework throttles on our limiter: exact, one round trip, sliding window.

The same names as DRF's own, so switching is a change of dotted path::

    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": [
            "django_creator_cache.ratelimit.drf.AnonRateThrottle",
            "django_creator_cache.ratelimit.drf.UserRateThrottle",
        ],
        "DEFAULT_THROTTLE_RATES": {"anon": "100/hour", "user": "1000/h"},
    }

DRF's throttles read a list of past hits from the cache, then write it back: two round
trips, and requests that read the same list at once each add themselves to their own copy,
so more than the rate gets through. These count and answer in one Lua script (one
EVALSHA), exact across processes. The client address is ``client_ip`` (``REMOTE_ADDR``, or
``X-Forwarded-For`` only behind ``RATELIMIT_TRUSTED_PROXIES``), not DRF's ``NUM_PROXIES``
reading, which by default takes a forged ``X-Forwarded-For`` at its word. Requires the
``drf`` extra; nothing else in the package imports DRF.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from .core import Limiter, Usage
from .keys import ip_key, user_identity
from .rates import Rate, as_rate

if TYPE_CHECKING:  # rest_framework.views imports DEFAULT_THROTTLE_CLASSES, i.e. this module
    from rest_framework.request import Request
    from rest_framework.views import APIView

__all__ = ["AnonRateThrottle", "RateThrottle", "ScopedRateThrottle", "UserRateThrottle"]


class RateThrottle(BaseThrottle):
    """A throttle counted by ``Limiter``: subclass it and define ``get_identity``.

    ``rate`` (``"100/h"``, ``"100/hour"``, a ``Rate``) wins over
    ``DEFAULT_THROTTLE_RATES[scope]``, which is read when used (``override_settings``
    works); a scope whose rate is None is not limited. ``algorithm``: ``"sliding_window"``
    (default), ``"fixed_window"`` or ``"token_bucket"``. ``cache_alias`` and
    ``fail_open``: as for ``Limiter`` (default ``RATELIMIT_CACHE``, ``RATELIMIT_FAIL_OPEN``).
    """

    scope: str | None = None
    rate: Rate | str | None = None
    algorithm: str = "sliding_window"
    cache_alias: str | None = None
    fail_open: bool | None = None

    def __init__(self) -> None:
        # DRF makes one throttle per request: the check's result lives here for ``wait``.
        self.usage: Usage | None = None

    def get_identity(self, request: Request, view: APIView) -> str | None:
        """Who this request counts as; None: not limited by this throttle."""
        raise NotImplementedError(f"{type(self).__qualname__} must define get_identity()")

    def get_scope(self, view: APIView) -> str | None:
        return self.scope

    def get_rate(self, scope: str | None) -> Rate | str | None:
        if self.rate is not None:
            return self.rate
        if not scope:
            raise ImproperlyConfigured(
                f"{type(self).__qualname__} needs a rate or a scope in DEFAULT_THROTTLE_RATES"
            )
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        if scope not in rates:
            raise ImproperlyConfigured(f"No default throttle rate set for {scope!r} scope")
        rate: Rate | str | None = rates[scope]
        return rate

    def allow_request(self, request: Request, view: APIView) -> bool:
        scope = self.get_scope(view)
        rate = self.get_rate(scope)
        if rate is None:
            return True
        identity = self.get_identity(request, view)
        if identity is None:
            return True
        cls = type(self)
        group = f"drf:{scope}" if scope else f"drf:{cls.__module__}.{cls.__qualname__}"
        limiter = _limiter(group, as_rate(rate), self.algorithm, self.cache_alias, self.fail_open)
        self.usage = limiter.hit(identity)
        return self.usage.allowed

    def wait(self) -> float | None:
        """Seconds until a refused request would pass: DRF's ``Retry-After``."""
        if self.usage is None or self.usage.allowed:
            return None
        return max(self.usage.retry_after, 1.0)


class AnonRateThrottle(RateThrottle):
    """Anonymous requests, per client address (an IPv6 client per /64); scope ``anon``."""

    scope = "anon"

    def get_identity(self, request: Request, view: APIView) -> str | None:
        if user_identity(request.user) is not None:
            return None
        return ip_key(request._request)


class UserRateThrottle(RateThrottle):
    """Per user, and anonymous requests per client address; scope ``user``."""

    scope = "user"

    def get_identity(self, request: Request, view: APIView) -> str | None:
        return _user_or_ip(request)


class ScopedRateThrottle(RateThrottle):
    """Per view scope (the view's ``throttle_scope``), per user or client address; views
    without a scope are not limited."""

    scope_attr = "throttle_scope"

    def get_identity(self, request: Request, view: APIView) -> str | None:
        return _user_or_ip(request)

    def get_scope(self, view: APIView) -> str | None:
        scope: str | None = getattr(view, self.scope_attr, None)
        return scope

    def get_rate(self, scope: str | None) -> Rate | str | None:
        if not scope and self.rate is None:
            return None
        return super().get_rate(scope)


def _user_or_ip(request: Request) -> str:
    return user_identity(request.user) or ip_key(request._request)


@lru_cache(maxsize=256)
def _limiter(
    group: str, rate: Rate, algorithm: str, cache: str | None, fail_open: bool | None
) -> Limiter:
    """DRF makes a throttle per request; the limiter for a given limit is made once."""
    return Limiter(group, rate, algorithm=algorithm, cache=cache, fail_open=fail_open)
