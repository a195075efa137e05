"""The one exception tree of django-creator-cache.

Each class also subclasses the built-in that Django code already expects, so
callers that catch ``ValueError``/``TypeError`` keep working.
"""

from __future__ import annotations

import pickle
from typing import Any

from django.core.exceptions import PermissionDenied


class CacheError(Exception):
    """Base class of every error this package raises on purpose."""


class CacheUnavailable(CacheError):
    """Redis could not answer (down, slow past the timeout, or an error reply).

    Raised by counters (``incr``/``decr``), whose value must never be silently
    wrong, and by every call when the alias runs in strict mode.
    """

    def __init__(self, alias: str, operation: str, cause: BaseException) -> None:
        self.alias = alias
        self.operation = operation
        self.cause = cause
        super().__init__(f"cache {alias!r} unavailable during {operation}: {cause}")


class CircuitOpen(CacheError):
    """The alias's circuit breaker is open: the call did not touch the network."""


class ProducerFailed(CacheError, RuntimeError):
    """Single flight: another caller's computation of this key just failed.

    Raised instead of running the computation again while that caller's short
    failure mark lives (``get_or_set(..., failure_ttl=...)``, one second by
    default); ``error`` is the original exception's class and message.
    """

    def __init__(self, key: str, error: str) -> None:
        self.key = key
        self.error = error
        super().__init__(f"computing {key!r} failed in another caller moments ago: {error}")


class SerializationError(CacheError, TypeError):
    """A value could not be serialised; nothing was written."""


class PickleSerializationError(SerializationError, pickle.PicklingError):
    """Pickle refused the value; still a ``pickle.PicklingError`` for callers
    migrating from backends that let pickle's own error through."""


class CorruptValue(CacheError, ValueError):
    """A stored value could not be decompressed or deserialised."""


class Ratelimited(CacheError, PermissionDenied):
    """A rate limit refused a request; ``usage`` says which limit and when to retry.

    A ``PermissionDenied``, so if it is raised (see ``RATELIMIT_VIEW``) and nothing else
    handles it, Django answers 403 through ``handler403``.
    """

    def __init__(self, usage: Any) -> None:  # a ratelimit.core.Usage
        self.usage = usage
        super().__init__(
            f"rate limit {usage.group!r} exceeded ({usage.limit} allowed); "
            f"retry in {usage.retry_after:.1f}s"
        )
