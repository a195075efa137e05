"""Writes: ``set``/``add``, ``set_many``, deletes, ``touch`` and the expiry commands.

A write Redis cannot take reports False (``set_many``: the keys not stored) and,
while the circuit is open, goes to the local fallback when one is configured.
Whatever happens, this process's local copies of the keys are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...exceptions import CircuitOpen
from .. import indexes
from ..execution import Pipe, Steps, Unavailable
from .common import delete_keys, trace, tracing

if TYPE_CHECKING:
    from ..protocol import Backend


def set_(
    cache: Backend,
    key: Any,
    value: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    nx: bool = False,
    xx: bool = False,
    tags: Iterable[str] | None = None,
) -> Steps[bool]:
    """Store ``value``; ``tags`` (and the key's prefixes) make it invalidatable.

    One round trip: a plain ``SET``, or a pipeline that also records the key in
    its prefix and tag indexes.
    """
    joined = cache.indexes_of(key, tags)
    full = cache.make_key(key, version)
    encoded = cache.codec.encode(value, full)
    px = cache.px(timeout)
    cache.forget_local((full,))
    started = tracing()
    try:
        if px is not None and px <= 0:
            if nx:
                return not (yield ("EXISTS", full))
            yield ("DEL", full)
            cache.runtime.counters.deletes += 1
            return True
        args: tuple[Any, ...] = ("SET", full, encoded)
        if px is not None:
            args += ("PX", px)
        if nx:
            args += ("NX",)
        if xx:
            args += ("XX",)
        if joined:
            commands = indexes.joins(joined, full, px, cache.key_separator)
            stored = (yield Pipe([*commands, args]))[-1]
        else:
            stored = yield args
    except Unavailable as exc:
        fallback = cache.runtime.fallback
        blocked = isinstance(exc.cause, CircuitOpen) and fallback is not None
        if blocked and not (nx and fallback.get(full) is not None):  # type: ignore[union-attr]
            fallback.set(full, encoded, px)  # type: ignore[union-attr]
        return False
    finally:
        cache.forget_tier((full,))
    cache.runtime.counters.sets += 1
    trace("add" if nx else "set", full, "stored" if stored else "not stored", started)
    return bool(stored)


def add(
    cache: Backend,
    key: Any,
    value: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Iterable[str] | None = None,
) -> Steps[bool]:
    return (yield from set_(cache, key, value, timeout, version, nx=True, tags=tags))


def set_many(
    cache: Backend,
    data: dict[Any, Any],
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Iterable[str] | None = None,
) -> Steps[list[Any]]:
    """Store every entry in one pipeline; returns the keys that could not be stored."""
    if not data:
        return []
    tag_list = list(tags or ())
    px = cache.px(timeout)
    fulls = cache.make_keys(list(data), version)
    encode = cache.codec.encode
    encoded = {full: encode(v, full) for full, v in zip(fulls, data.values(), strict=True)}
    cache.forget_local(fulls)
    started = tracing()
    try:
        if px is not None and px <= 0:
            yield from delete_keys(cache, fulls)
            return []
        sep = cache.key_separator
        commands: list[tuple[Any, ...]] = []
        for user_key, full in zip(data, fulls, strict=True):
            joined = cache.indexes_of(user_key, tag_list)
            if joined:
                commands += indexes.joins(joined, full, px, sep)
        tail = () if px is None else ("PX", px)
        commands += [("SET", full, value, *tail) for full, value in encoded.items()]
        yield Pipe(commands)
    except Unavailable as exc:
        fallback = cache.runtime.fallback
        if isinstance(exc.cause, CircuitOpen) and fallback is not None:
            for full, value in encoded.items():
                fallback.set(full, value, px)
        return list(data)
    finally:
        cache.forget_tier(fulls)
    cache.runtime.counters.sets += len(encoded)
    trace("set_many", fulls, "stored", started)
    return []


def delete(
    cache: Backend, key: Any, version: int | None = None, prefix: str | None = None
) -> Steps[bool]:
    """Delete ``key`` (``prefix`` replaces the alias's ``KEY_PREFIX``)."""
    full = cache.delete_key(key, version, prefix)
    cache.forget_local((full,))
    try:
        deleted = bool((yield ("DEL", full)))
    except Unavailable:
        return False
    finally:
        cache.forget_local((full,))
    cache.runtime.counters.deletes += 1
    return deleted


def delete_many(cache: Backend, keys: Iterable[Any], version: int | None = None) -> Steps[int]:
    """Delete ``keys``; returns how many existed (django-redis's contract)."""
    fulls = cache.make_keys(list(keys), version)
    if not fulls:
        return 0
    cache.forget_local(fulls)
    try:
        deleted = yield from delete_keys(cache, fulls)
    except Unavailable:
        return 0
    finally:
        cache.forget_local(fulls)
    cache.runtime.counters.deletes += len(fulls)
    return deleted


def touch(
    cache: Backend, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
) -> Steps[bool]:
    px = cache.px(timeout)
    full = cache.make_key(key, version)
    if px is None:
        return (yield from _expiry(cache, full, Pipe([("PERSIST", full), ("EXISTS", full)])))
    return (yield from _expiry(cache, full, ("PEXPIRE", full, px)))


def expire(cache: Backend, key: Any, timeout: Any, version: int | None = None) -> Steps[bool]:
    px = cache.px(timeout)
    full = cache.make_key(key, version)
    request = ("PERSIST", full) if px is None else ("PEXPIRE", full, px)
    return (yield from _expiry(cache, full, request))


def pexpire(cache: Backend, key: Any, timeout: Any, version: int | None = None) -> Steps[bool]:
    """``timeout`` in milliseconds (or a ``timedelta``). ``DEFAULT_TIMEOUT`` means the
    alias's default timeout *number*, read as milliseconds, exactly as django-redis does."""
    full = cache.make_key(key, version)
    if timeout is DEFAULT_TIMEOUT:
        timeout = cache.default_timeout
    if timeout is None:
        return (yield from _expiry(cache, full, ("PERSIST", full)))
    seconds = getattr(timeout, "total_seconds", None)
    ms = int(seconds() * 1000) if seconds is not None else int(timeout)
    return (yield from _expiry(cache, full, ("PEXPIRE", full, ms)))


def expire_at(cache: Backend, key: Any, when: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    return (yield from _expiry(cache, full, ("EXPIREAT", full, _timestamp(when, 1))))


def pexpire_at(cache: Backend, key: Any, when: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    return (yield from _expiry(cache, full, ("PEXPIREAT", full, _timestamp(when, 1000))))


def persist(cache: Backend, key: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    return (yield from _expiry(cache, full, ("PERSIST", full)))


def _timestamp(when: Any, per_second: int) -> int:
    """A datetime or a number as Unix time in seconds (1) or milliseconds (1000)."""
    stamp = getattr(when, "timestamp", None)
    if stamp is not None:
        return int(stamp() * per_second)
    return int(when)


def _expiry(cache: Backend, full: str, request: Any) -> Steps[bool]:
    """Change ``full``'s life; its local copy goes whatever happens (its expiry changed)."""
    try:
        reply = yield request
    except Unavailable:
        return False
    finally:
        cache.forget_local((full,))
    return bool(reply[-1] if isinstance(reply, list) else reply)
