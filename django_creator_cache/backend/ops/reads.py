"""Reads: ``get``, ``get_many``, ``has_key``, ``ttl``/``pttl``, ``keys``.

A read that Redis cannot answer is a miss (or the local fallback's value while
the circuit is open); a value that cannot be decoded is a miss and is deleted.
Hits, misses and fallback values are counted for the alias's metrics when it has them
(``runtime.metrics``, None while ``CACHE_METRICS`` is off).
With the local tier on, a local hit sends nothing, and a miss reads the key's
remaining life in the same round trip so the copy never outlives the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import DEBUG
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ...exceptions import CorruptValue
from ..execution import Call, Pipe, Script, Steps, Unavailable
from ..local_tier import MISSING, LocalTier
from ..scripts import FETCH_MANY, FETCH_ONE
from ..single import Known, More, One
from .common import Scan, drop_corrupt, measure, text, trace, tracing
from .common import logger as log

if TYPE_CHECKING:
    from ..protocol import Backend

# What a get_many call keeps between its request and the reply: keys, full keys, start.
_Many = tuple[list[Any], list[str], float]


def _ask(cache: Backend, key: Any, default: Any = None, version: int | None = None) -> Any:
    """The value of ``key``, or ``default``: one ``GET`` (the local tier may answer
    without one); an unreadable value is a miss and is deleted; while Redis cannot
    answer, the local fallback's copy or ``default``."""
    full = cache.make_key(key, version)
    local = cache.local_tier
    started = perf_counter() if log.isEnabledFor(DEBUG) else 0.0
    if local is not None:
        held = local.held(full)
        if held is MISSING:
            return _local_miss(cache, local, full, default, started)
        runtime = cache.runtime
        runtime.counters.local_hits += 1
        if runtime.metrics is not None:
            runtime.metrics.local_hits += 1
        if started:
            trace("get", full, "local tier", started)
        return Known(_value(cache, held))
    return ("GET", full), (full, default, started)


def _value(cache: Backend, held: tuple[bytes, Any, Any]) -> Any:
    """The value of a local tier entry: its immutable decoded value, else decoded now."""
    value = held[2]
    return cache.codec.decode(held[0]) if value is MISSING else value


def _answer(cache: Backend, raw: bytes | None, state: tuple[str, Any, float]) -> Any:
    full, default, started = state
    runtime = cache.runtime
    metrics = runtime.metrics
    if raw is None:
        runtime.counters.misses += 1
        if metrics is not None:
            metrics.get_misses += 1
        if started:
            trace("get", full, "miss", started)
        return default
    try:
        value = cache.codec.decode(raw)
    except CorruptValue as exc:
        if metrics is not None:
            metrics.get_misses += 1
        return More(_dropped(cache, full, exc, default))
    runtime.counters.hits += 1
    if metrics is not None:
        metrics.get_hits += 1
    if started:
        trace("get", full, "hit", started)
    return value


def _dropped(cache: Backend, full: str, exc: CorruptValue, default: Any) -> Steps[Any]:
    yield from drop_corrupt(cache, [(full, exc)])
    return default


def _unanswered(cache: Backend, exc: Unavailable, state: tuple[str, Any, float]) -> Any:
    full, default, started = state
    trace("get", full, "unavailable", started)
    return _fallback(cache, full, default)


get = One("get", _ask, _answer, _unanswered)


def _fallback(cache: Backend, full: str, default: Any) -> Any:
    """The local fallback's copy of ``full`` while Redis cannot answer, else ``default``."""
    value = cache.fallback_get(full, MISSING)
    if value is MISSING:
        return default
    measure(cache, "get", "fallback")
    return value


def _local_miss(
    cache: Backend, local: LocalTier, full: str, default: Any, started: float
) -> Steps[Any]:
    """Not in the local tier: read the value and its remaining life, and keep it."""
    token = local.reserve(full)
    pttl = None
    try:
        if token is None:
            raw = yield ("GET", full)
        else:
            raw, pttl = yield Script(FETCH_ONE, [full])
    except Unavailable:
        local.fill(full, token, None, None)
        return _fallback(cache, full, default)
    found, corrupt = cache.read_many([full], [full], [raw])
    measure(cache, "get", "hit" if found else "miss")
    local.fill(full, token, None if corrupt else raw, pttl, found.get(full, MISSING))
    if corrupt:
        yield from drop_corrupt(cache, corrupt)
    trace("get", full, "local tier miss", started)
    return found.get(full, default)


def _ask_many(cache: Backend, keys: Iterable[Any], version: int | None = None) -> Any:
    """The values of ``keys`` found, by key: one ``MGET`` (one per slot on a Cluster;
    the local tier answers what it holds); unreadable values are misses and are deleted;
    while Redis cannot answer, what the local fallback holds."""
    keys = list(keys)
    if not keys:
        return Known({})
    fulls = cache.make_keys(keys, version)
    local = cache.local_tier
    if local is not None:
        return _local_get_many(cache, local, keys, fulls)
    request = Call("mget_nonatomic", fulls) if cache.cluster else ("MGET", *fulls)
    return request, (keys, fulls, tracing())


def _answer_many(cache: Backend, values: list[Any], state: _Many) -> Any:
    keys, fulls, started = state
    found, corrupt = cache.read_many(keys, fulls, values)
    _measure_many(cache, len(found), len(keys))
    if started:
        trace("get_many", fulls, f"{len(found)} of {len(keys)} hit", started)
    if corrupt:
        return More(_dropped_many(cache, corrupt, found))
    return found


def _dropped_many(
    cache: Backend, corrupt: list[tuple[str, CorruptValue]], found: dict[Any, Any]
) -> Steps[dict[Any, Any]]:
    yield from drop_corrupt(cache, corrupt)
    return found


def _unanswered_many(cache: Backend, exc: Unavailable, state: _Many) -> dict[Any, Any]:
    keys, fulls, _ = state
    return _fallback_many(cache, keys, fulls)


get_many = One("get_many", _ask_many, _answer_many, _unanswered_many)


def _local_get_many(
    cache: Backend, local: LocalTier, keys: list[Any], fulls: list[str]
) -> Steps[dict[Any, Any]]:
    found: dict[Any, Any] = {}
    rest_keys: list[Any] = []
    rest: list[str] = []
    for key, full, held in zip(keys, fulls, local.get_many(fulls), strict=True):
        if held is MISSING:
            rest_keys.append(key)
            rest.append(full)
        else:
            found[key] = _value(cache, held)
    cache.runtime.counters.local_hits += len(found)
    if cache.runtime.metrics is not None:
        cache.runtime.metrics.local_hits += len(found)
    if not rest:
        return found
    tokens = [local.reserve(full) for full in rest]
    try:
        values, pttls = yield from _fetch_many(cache, rest)
    except Unavailable:
        for full, token in zip(rest, tokens, strict=True):
            local.fill(full, token, None, None)
        return {**found, **_fallback_many(cache, rest_keys, rest)}
    got, corrupt = cache.read_many(rest_keys, rest, values)
    _measure_many(cache, len(got), len(rest))
    bad = {full for full, _ in corrupt}
    for key, full, token, raw, pttl in zip(rest_keys, rest, tokens, values, pttls, strict=True):
        local.fill(full, token, None if full in bad else raw, pttl, got.get(key, MISSING))
    if corrupt:
        yield from drop_corrupt(cache, corrupt)
    found.update(got)
    return found


def _fallback_many(cache: Backend, keys: list[Any], fulls: list[str]) -> dict[Any, Any]:
    found = cache.fallback_get_many(keys, fulls)
    if found:
        measure(cache, "get_many", "fallback", len(found))
    return found


def _measure_many(cache: Backend, hits: int, asked: int) -> None:
    metrics = cache.runtime.metrics
    if metrics is not None:
        if hits:
            metrics.count("get_many", "hit", hits)
        if asked > hits:
            metrics.count("get_many", "miss", asked - hits)


def _fetch_many(cache: Backend, fulls: list[str]) -> Steps[tuple[list[Any], list[Any]]]:
    """Values and PTTLs of ``fulls`` in one round trip (a script per key on a Cluster)."""
    if cache.cluster:
        replies = yield Pipe([("EVAL", FETCH_MANY.source, 1, full) for full in fulls])
        return [r[0] for r in replies], [r[1] for r in replies]
    reply = yield Script(FETCH_MANY, fulls)
    half = len(reply) // 2
    return reply[:half], reply[half:]


def has_key(cache: Backend, key: Any, version: int | None = None) -> Steps[bool]:
    try:
        return bool((yield ("EXISTS", cache.make_key(key, version))))
    except Unavailable:
        return False


def ttl(cache: Backend, key: Any, version: int | None = None) -> Steps[int | None]:
    """Seconds to live; ``None`` if it never expires, 0 if missing."""
    return (yield from _life(cache, "TTL", key, version))


def pttl(cache: Backend, key: Any, version: int | None = None) -> Steps[int | None]:
    """Milliseconds to live; ``None`` if it never expires, 0 if missing."""
    return (yield from _life(cache, "PTTL", key, version))


def _life(cache: Backend, command: str, key: Any, version: int | None) -> Steps[int | None]:
    try:
        t = int((yield (command, cache.make_key(key, version))))
    except Unavailable:
        return 0
    return None if t == -1 else max(t, 0)


def keys(cache: Backend, search: str, version: int | None = None) -> Steps[list[str]]:
    """User keys matching the glob ``search`` (SCAN on every primary)."""
    try:
        found = yield Scan(cache.make_pattern(search, version))
    except Unavailable:
        return []
    return [cache.reverse_key(text(k)) for k in found]
