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
from ..single import More, One
from . import indexing, multi
from .common import delete_keys, trace, tracing

if TYPE_CHECKING:
    from ..protocol import Backend


def _ask_set(
    cache: Backend,
    key: Any,
    value: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    nx: bool = False,
    xx: bool = False,
    tags: Any = None,
) -> Any:
    """Store ``value``; its root (``campaigns`` of ``campaigns:1``) and ``tags`` (a string or
    an iterable) make it invalidatable.

    One round trip: a plain ``SET``, or one Lua script that also adds the key to its
    root's and tags' indexes, atomically (see ``indexes``).
    """
    tag_list = indexes.tag_names(tags) if tags is not None else ()
    text = key if type(key) is str else str(key)
    full = cache.make_key(key, version)
    encoded = cache.codec.encode(value, full)
    px = cache.px(timeout)
    cache.forget_local((full,))
    if (
        (px is not None and px <= 0)
        or tag_list
        or (cache.key_separator in text and cache.options.track_writes)
    ):
        item = (text, full, encoded, cache.version if version is None else version)
        mode = "NX" if nx else "XX" if xx else ""
        if (px is None or px > 0) and (
            one := indexing.Indexed.ready(cache, item, px, mode, tag_list)
        ):
            return one.command(), (full, encoded, px, nx, tracing(), one)
        return _set_steps(cache, (full, encoded, px, nx, tracing(), None), item, xx, tag_list)
    state = (full, encoded, px, nx, tracing(), None)
    args: tuple[Any, ...] = ("SET", full, encoded)
    if px is not None:
        args += ("PX", px)
    if nx:
        args += ("NX",)
    if xx:
        args += ("XX",)
    return args, state


def _ask_add(
    cache: Backend,
    key: Any,
    value: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Any = None,
) -> Any:
    """``set`` only if ``key`` is not there; whether it was stored."""
    return _ask_set(cache, key, value, timeout, version, nx=True, tags=tags)


# What a set keeps from its request to the reply: full key, encoded value, px, nx, start,
# and the indexed write when the request is its script.
_Set = tuple[str, Any, "int | None", bool, float, "indexing.Indexed | None"]


def _answered(cache: Backend, reply: Any, state: _Set) -> bool | More:
    """A set's reply: ``SET``'s, or the indexed write's script's."""
    indexed = state[5]
    if indexed is None:
        return _stored(cache, reply, state)
    healing = indexed.healing(cache, reply)
    stored = indexed.stored(cache, reply)
    if healing is not None:
        return More(_healed(cache, healing, stored, state))
    return _stored(cache, stored, state)


def _stored(cache: Backend, stored: Any, state: _Set) -> bool:
    full, _, _, nx, started, _ = state
    cache.forget_tier((full,))
    cache.runtime.counters.sets += 1
    if started:
        trace("add" if nx else "set", full, "stored" if stored else "not stored", started)
    return bool(stored)


def _healed(cache: Backend, healing: Steps[None], stored: bool, state: _Set) -> Steps[bool]:
    """The write's records written again (``Indexed.healing``), then its outcome."""
    try:
        yield from healing
    except Unavailable as exc:
        return _unstored(cache, exc, state)
    return _stored(cache, stored, state)


def _unstored(cache: Backend, exc: Unavailable, state: _Set) -> bool:
    """Redis did not take it: while the circuit is open, the local fallback keeps it
    (``add`` only if the fallback has no value there)."""
    full, encoded, px, nx, _, _ = state
    cache.forget_tier((full,))
    fallback = cache.runtime.fallback
    blocked = isinstance(exc.cause, CircuitOpen) and fallback is not None
    if blocked and not (nx and fallback.get(full) is not None):  # type: ignore[union-attr]
        fallback.set(full, encoded, px)  # type: ignore[union-attr]
    return False


def _set_steps(
    cache: Backend, state: _Set, item: indexing.Item, xx: bool, tag_list: tuple[str, ...]
) -> Steps[bool]:
    """A write that is not one plain ``SET``: a timeout that deletes, or an indexed entry."""
    full, _, px, nx, _, _ = state
    try:
        if px is not None and px <= 0:
            if nx:
                return not (yield ("EXISTS", full))
            yield ("DEL", full)
            cache.runtime.counters.deletes += 1
            return True
        mode = "NX" if nx else "XX" if xx else ""
        stored = (yield from indexing.write(cache, [item], px, mode, tag_list))[0]
    except Unavailable as exc:
        return _unstored(cache, exc, state)
    finally:
        cache.forget_tier((full,))
    return _stored(cache, stored, state)


set_ = One("set", _ask_set, _answered, _unstored)
add = One("add", _ask_add, _answered, _unstored)


def set_many(
    cache: Backend,
    data: dict[Any, Any],
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    tags: Any = None,
) -> Steps[list[Any]]:
    """Store every entry in one round trip (one per node); returns the keys not stored.

    Entries that join an index go through the write script (each entry atomic with its
    memberships, many entries per script); the others are plain ``SET``s.
    """
    if not data:
        return []
    tag_list = indexes.tag_names(tags)
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
        track = cache.options.track_writes
        number = cache.version if version is None else version
        items: list[indexing.Item] = []
        plain: list[tuple[Any, ...]] = []
        tail = () if px is None else ("PX", px)
        for user_key, full in zip(data, fulls, strict=True):
            text = user_key if type(user_key) is str else str(user_key)
            if tag_list or (track and sep in text):
                items.append((text, full, encoded[full], number))
            else:
                plain.append(("SET", full, encoded[full], *tail))
        if items:
            if plain:
                yield multi.Scripts(plain)
            yield from indexing.write(cache, items, px, "", tag_list)
        else:
            yield Pipe(plain)
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
        request = Pipe([("PERSIST", full), ("EXISTS", full)])
        return (yield from change_life(cache, key, full, request, None))
    return (yield from change_life(cache, key, full, ("PEXPIRE", full, px), px))


def expire(cache: Backend, key: Any, timeout: Any, version: int | None = None) -> Steps[bool]:
    px = cache.px(timeout)
    full = cache.make_key(key, version)
    request = ("PERSIST", full) if px is None else ("PEXPIRE", full, px)
    return (yield from change_life(cache, key, full, request, px))


def pexpire(cache: Backend, key: Any, timeout: Any, version: int | None = None) -> Steps[bool]:
    """``timeout`` in milliseconds (or a ``timedelta``). ``DEFAULT_TIMEOUT`` means the
    alias's default timeout *number*, read as milliseconds, exactly as django-redis does."""
    full = cache.make_key(key, version)
    if timeout is DEFAULT_TIMEOUT:
        timeout = cache.default_timeout
    if timeout is None:
        return (yield from change_life(cache, key, full, ("PERSIST", full), None))
    seconds = getattr(timeout, "total_seconds", None)
    ms = int(seconds() * 1000) if seconds is not None else int(timeout)
    return (yield from change_life(cache, key, full, ("PEXPIRE", full, ms), ms))


def expire_at(cache: Backend, key: Any, when: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    at = _timestamp(when, 1)
    life = at * 1000 - indexes.now_ms()
    return (yield from change_life(cache, key, full, ("EXPIREAT", full, at), life))


def pexpire_at(cache: Backend, key: Any, when: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    at = _timestamp(when, 1000)
    life = at - indexes.now_ms()
    return (yield from change_life(cache, key, full, ("PEXPIREAT", full, at), life))


def persist(cache: Backend, key: Any, version: int | None = None) -> Steps[bool]:
    full = cache.make_key(key, version)
    return (yield from change_life(cache, key, full, ("PERSIST", full), None))


def _timestamp(when: Any, per_second: int) -> int:
    """A datetime or a number as Unix time in seconds (1) or milliseconds (1000)."""
    stamp = getattr(when, "timestamp", None)
    if stamp is not None:
        return int(stamp() * per_second)
    return int(when)


def change_life(cache: Backend, key: Any, full: str, request: Any, life: int | None) -> Steps[bool]:
    """Change ``full``'s life to ``life`` ms (None: always). Its root's index is made to
    live as long in the same round trip, so an invalidation still finds the entry (tag
    indexes keep the life of the write that tagged it). Its local copy goes whatever
    happens (its expiry changed)."""
    lasting = indexing.lasting(cache, key, full, life)
    if lasting:  # the index's part is best effort: the entry's replies decide
        commands = list(request.commands) if type(request) is Pipe else [request]
        request = Pipe([*commands, *lasting], partial=True)
    try:
        reply = yield request
    except Unavailable:
        return False
    finally:
        cache.forget_local((full,))
    if lasting:
        reply = reply[: -len(lasting)]
        if any(isinstance(part, Exception) for part in reply):
            return False
    return bool(reply[-1] if isinstance(reply, list) else reply)
