"""Counters: ``incr``/``decr`` (one atomic round trip) and ``incr_version``.

A counter is exact or the call raises: when Redis cannot answer, or the reply to
a command that may have run is lost, the failure reaches the caller as
``CacheUnavailable`` instead of a guessed value (nothing here catches it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...exceptions import CacheUnavailable, CorruptValue
from ..execution import Pipe, Script, Steps, Unavailable
from ..replies import unreadable
from ..scripts import INCR, REPLACE_IF
from ..single import More, One

if TYPE_CHECKING:
    from ..protocol import Backend

# Error replies of INCRBY meaning "not a 64-bit integer (any more)": decided in Python.
_NOT_A_64_BIT_INTEGER = ("not an integer", "out of range", "would overflow")
# Tries of an increment past 64 bits against writers changing the counter meanwhile.
_MAX_REPLACES = 1000


def _ask(
    cache: Backend,
    key: Any,
    delta: int = 1,
    version: int | None = None,
    ignore_key_check: bool = False,
) -> Any:
    """Atomically add ``delta``, keeping the key's TTL; one round trip.

    Raises ``ValueError`` if the key is missing (unless ``ignore_key_check``),
    ``TypeError`` if its value is not an integer, and ``CacheUnavailable`` when
    Redis cannot answer: a counter is never silently wrong.
    """
    full = cache.make_key(key, version)
    if ignore_key_check:
        return ("INCRBY", full, delta), (key, full, delta)
    return INCR.command((full,), (delta,)), (key, full, delta)


def _answer(cache: Backend, value: Any, state: tuple[Any, str, int]) -> int:
    key, full, _ = state
    cache.forget_local((full,))
    if value is None:
        raise ValueError(f"Key {key!r} not found")
    if type(value) is not int:  # never a guessed counter
        raise CacheUnavailable(cache.alias, "incr", unreadable("incr", value))
    return value


def _unanswered(cache: Backend, exc: Unavailable, state: tuple[Any, str, int]) -> More:
    _, full, delta = state
    cache.forget_local((full,))
    if not exc.answered:
        raise exc
    return More(_refused(cache, full, delta, exc.cause))


def _ask_decr(cache: Backend, key: Any, delta: int = 1, version: int | None = None) -> Any:
    """``incr`` by ``-delta``."""
    return _ask(cache, key, -delta, version)


incr = One("incr", _ask, _answer, _unanswered, errors=True)
decr = One("decr", _ask_decr, _answer, _unanswered, errors=True)


def _refused(cache: Backend, full: str, delta: int, error: BaseException) -> Steps[int]:
    """Redis refused the increment: a wrong type, an integer past 64 bits, or another error."""
    text = str(error)
    if text.startswith("WRONGTYPE"):
        kind = yield ("TYPE", full)
        raise TypeError(f"value of {full!r} is a Redis {kind!r}, not a counter") from error
    if not any(part in text for part in _NOT_A_64_BIT_INTEGER):
        cache.runtime.counters.errors += 1
        raise CacheUnavailable(cache.alias, "incr", error) from error
    # Integers beyond 64 bits are stored as decimal text: added in Python, and written
    # back only if no other writer changed the value meanwhile (else read again).
    for _ in range(_MAX_REPLACES):
        raw = yield ("GET", full)
        if raw is None:
            raise ValueError(f"Key {full!r} not found")
        try:
            current = cache.codec.decode(raw)
        except CorruptValue as exc:
            raise TypeError(f"value of {full!r} cannot be read: {exc}") from exc
        if type(current) is not int:
            raise TypeError(f"value of {full!r} is {type(current).__name__}, not an integer")
        value: int = current + delta
        try:
            replaced = yield Script(REPLACE_IF, (full,), (raw, value))
        finally:
            cache.forget_local((full,))
        if replaced == 1:
            return value
    raise CacheUnavailable(
        cache.alias, "incr", RuntimeError(f"{full!r} kept changing under the increment")
    )


def incr_version(
    cache: Backend, key: Any, delta: int = 1, version: int | None = None
) -> Steps[int]:
    """Move ``key`` to ``version + delta``, keeping its value and TTL."""
    version = cache.version if version is None else version
    old = cache.make_key(key, version)
    new = cache.make_key(key, version + delta)
    try:
        raw, life = yield Pipe([("GET", old), ("PTTL", old)])
        if raw is None:
            raise ValueError(f"Key {key!r} not found")
        yield ("SET", new, raw, "PX", life) if life is not None and life > 0 else ("SET", new, raw)
        yield ("DEL", old)
    finally:
        cache.forget_local((old, new))
    return version + delta


def decr_version(
    cache: Backend, key: Any, delta: int = 1, version: int | None = None
) -> Steps[int]:
    return (yield from incr_version(cache, key, -delta, version))
