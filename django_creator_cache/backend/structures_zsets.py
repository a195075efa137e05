"""Hash and sorted-set helpers (django-redis 7.0 compatible), and what every structure
helper shares: member decoding and ``bind``.

See ``structures`` for the compatibility contract. Each helper is described once
as steps (see ``execution``) and bound with ``bind``, giving the sync method and
its native async twin (``hset``/``ahset``, ``zadd``/``azadd``...).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import CorruptValue
from .execution import Call, Steps, Unavailable
from .ops import twin

if TYPE_CHECKING:
    from .protocol import Backend

logger = logging.getLogger("django_creator_cache")

R = TypeVar("R")
_CORRUPT = object()


def bind(
    steps: Callable[..., Steps[R]],
) -> tuple[Callable[..., R], Callable[..., Coroutine[Any, Any, R]]]:
    """``twin(steps)``, introspected as django-redis documents the method: ``self``
    first, ``client=None`` last (keyword-only: the runner takes it, not the steps)."""
    pair = twin(steps)
    signature = inspect.signature(steps)
    first, *rest = signature.parameters.values()
    client = inspect.Parameter("client", inspect.Parameter.KEYWORD_ONLY, default=None)
    public = signature.replace(
        parameters=[first.replace(name="self", annotation=inspect.Parameter.empty), *rest, client],
        return_annotation=inspect.Signature.empty,
    )
    for method in pair:
        setattr(method, "__signature__", public)  # noqa: B010 (not a declared attribute)
    return pair


def decoded(cache: Backend, raws: Iterable[Any]) -> list[Any]:
    """Decoded members; an unreadable one is skipped, logged and counted as corrupt."""
    return [value for value in (_member(cache, raw) for raw in raws) if value is not _CORRUPT]


def scored(cache: Backend, pairs: Iterable[Any]) -> list[tuple[Any, Any]]:
    """``(member, score)`` pairs with members decoded, unreadable ones skipped."""
    found = ((_member(cache, member), score) for member, score in pairs)
    return [pair for pair in found if pair[0] is not _CORRUPT]


def one_or_many(cache: Backend, reply: Any, container: Callable[[list[Any]], Any]) -> Any:
    """django-redis's ``_decode_iterable_result``: None, a container, or one member."""
    if reply is None:
        return None
    if isinstance(reply, list | set):
        return container(decoded(cache, reply))
    value = _member(cache, reply)
    return None if value is _CORRUPT else value


def _member(cache: Backend, raw: Any) -> Any:
    try:
        return cache.codec.decode(raw)
    except CorruptValue as exc:
        cache.runtime.counters.corrupt += 1
        logger.warning("cache %r: skipping unreadable member: %s", cache.alias, exc)
        return _CORRUPT


def _ask(request: Call, default: R, cast: Callable[[Any], R] | None = None) -> Steps[R]:
    """The reply to ``request`` (through ``cast``), or ``default`` if Redis failed."""
    try:
        reply = yield request
    except Unavailable:
        return default
    return reply if cast is None else cast(reply)


# -- hashes ----------------------------------------------------------------------------


def _hset(
    cache: Backend,
    key: Any,
    field: Any = None,
    value: Any = None,
    mapping: Mapping[Any, Any] | None = None,
    version: int | None = None,
) -> Steps[int]:
    """Number of fields added (not updated) to the hash ``key``; values are encoded like
    cache values, field names stored as given."""
    encode = cache.codec.encode
    request = Call(
        "hset",
        cache.make_key(key, version),
        key=field,
        value=encode(value) if value is not None else None,
        mapping={f: encode(v) for f, v in mapping.items()} if mapping is not None else None,
    )
    return (yield from _ask(request, 0, int))


def _hdel(cache: Backend, key: Any, field: Any, version: int | None = None) -> Steps[int]:
    """Number of fields removed from the hash ``key`` (0 or 1)."""
    return (yield from _ask(Call("hdel", cache.make_key(key, version), field), 0, int))


def _hlen(cache: Backend, key: Any, version: int | None = None) -> Steps[int]:
    """Number of fields in the hash ``key``."""
    return (yield from _ask(Call("hlen", cache.make_key(key, version)), 0, int))


def _hkeys(cache: Backend, key: Any, version: int | None = None) -> Steps[list[str]]:
    """Field names of the hash ``key``, as str."""
    try:
        fields = yield Call("hkeys", cache.make_key(key, version))
    except Unavailable:
        return []
    return [f.decode() if isinstance(f, bytes) else f for f in fields]


def _hexists(cache: Backend, key: Any, field: Any, version: int | None = None) -> Steps[bool]:
    """Whether ``field`` exists in the hash ``key``."""
    return (yield from _ask(Call("hexists", cache.make_key(key, version), field), False, bool))


# -- sorted sets (members always serialised, integers too) ---------------------------------


def _zadd(
    cache: Backend,
    key: Any,
    mapping: Mapping[Any, float],
    nx: bool = False,
    xx: bool = False,
    ch: bool = False,
    incr: bool = False,
    gt: bool = False,
    lt: bool = False,
    version: int | None = None,
) -> Steps[Any]:
    """Number of members added (changed with ``ch``); the new score with ``incr``."""
    encoded = {cache.codec.encode_serialized(m): score for m, score in mapping.items()}
    full = cache.make_key(key, version)
    flags = {"nx": nx, "xx": xx, "ch": ch, "incr": incr, "gt": gt, "lt": lt}
    return (yield from _ask(Call("zadd", full, encoded, **flags), 0))


def _zcard(cache: Backend, key: Any, version: int | None = None) -> Steps[int]:
    """Number of members of the sorted set ``key``."""
    return (yield from _ask(Call("zcard", cache.make_key(key, version)), 0, int))


def _zcount(
    cache: Backend, key: Any, min: float | str, max: float | str, version: int | None = None
) -> Steps[int]:
    """Number of members with a score between ``min`` and ``max``."""
    return (yield from _ask(Call("zcount", cache.make_key(key, version), min, max), 0, int))


def _zincrby(
    cache: Backend, key: Any, amount: float, value: Any, version: int | None = None
) -> Steps[float | None]:
    """The new score of ``value`` after adding ``amount``."""
    member = cache.codec.encode_serialized(value)
    try:
        score: float | None = yield Call("zincrby", cache.make_key(key, version), amount, member)
    except Unavailable:
        return None
    return score


def _zpopmax(
    cache: Backend, key: Any, count: int | None = None, version: int | None = None
) -> Steps[Any]:
    """The removed highest ``(member, score)`` (None if empty), or a list of ``count``."""
    return (yield from _pop(cache, "zpopmax", key, count, version))


def _zpopmin(
    cache: Backend, key: Any, count: int | None = None, version: int | None = None
) -> Steps[Any]:
    """The removed lowest ``(member, score)`` (None if empty), or a list of ``count``."""
    return (yield from _pop(cache, "zpopmin", key, count, version))


def _pop(cache: Backend, op: str, key: Any, count: int | None, version: int | None) -> Steps[Any]:
    try:
        reply = yield Call(op, cache.make_key(key, version), count)
    except Unavailable:
        return None
    pairs = scored(cache, reply or [])
    if count is None:
        return pairs[0] if pairs else None
    return pairs


def _zrange(
    cache: Backend,
    key: Any,
    start: int,
    end: int,
    desc: bool = False,
    withscores: bool = False,
    score_cast_func: Callable[[Any], Any] = float,
    version: int | None = None,
) -> Steps[list[Any]]:
    """Members ranked ``start``..``end`` (inclusive), as ``(member, score)`` if asked."""
    options: dict[str, Any] = {
        "desc": desc,
        "withscores": withscores,
        "score_cast_func": score_cast_func,
    }
    request = Call("zrange", cache.make_key(key, version), start, end, **options)
    return (yield from _range(cache, request, withscores))


def _zrangebyscore(
    cache: Backend,
    key: Any,
    min: float | str,
    max: float | str,
    start: int | None = None,
    num: int | None = None,
    withscores: bool = False,
    score_cast_func: Callable[[Any], Any] = float,
    version: int | None = None,
) -> Steps[list[Any]]:
    """Members scored ``min``..``max``, lowest first, as ``(member, score)`` if asked."""
    options: dict[str, Any] = {"start": start, "num": num, "withscores": withscores}
    full = cache.make_key(key, version)
    request = Call("zrangebyscore", full, min, max, score_cast_func=score_cast_func, **options)
    return (yield from _range(cache, request, withscores))


def _zrevrange(
    cache: Backend,
    key: Any,
    start: int,
    end: int,
    withscores: bool = False,
    score_cast_func: Callable[[Any], Any] = float,
    version: int | None = None,
) -> Steps[list[Any]]:
    """Members ranked ``start``..``end`` from the highest score, as pairs if asked."""
    options: dict[str, Any] = {"withscores": withscores, "score_cast_func": score_cast_func}
    request = Call("zrevrange", cache.make_key(key, version), start, end, **options)
    return (yield from _range(cache, request, withscores))


def _zrevrangebyscore(
    cache: Backend,
    key: Any,
    max: float | str,
    min: float | str,
    start: int | None = None,
    num: int | None = None,
    withscores: bool = False,
    score_cast_func: Callable[[Any], Any] = float,
    version: int | None = None,
) -> Steps[list[Any]]:
    """Members scored ``max``..``min``, highest first, as ``(member, score)`` if asked."""
    options: dict[str, Any] = {"start": start, "num": num, "withscores": withscores}
    full = cache.make_key(key, version)
    request = Call("zrevrangebyscore", full, max, min, score_cast_func=score_cast_func, **options)
    return (yield from _range(cache, request, withscores))


def _range(cache: Backend, request: Call, withscores: bool) -> Steps[list[Any]]:
    try:
        reply = yield request
    except Unavailable:
        return []
    return scored(cache, reply) if withscores else decoded(cache, reply)


def _zrank(
    cache: Backend, key: Any, value: Any, withscore: bool = False, version: int | None = None
) -> Steps[Any]:
    """Rank of ``value`` (lowest score first), ``[rank, score]`` with ``withscore``;
    None if absent."""
    member = cache.codec.encode_serialized(value)
    request = Call("zrank", cache.make_key(key, version), member, withscore=withscore)
    return (yield from _ask(request, None))


def _zrem(cache: Backend, key: Any, *values: Any, version: int | None = None) -> Steps[int]:
    """Number of members removed from the sorted set ``key``."""
    encoded = [cache.codec.encode_serialized(v) for v in values]
    return (yield from _ask(Call("zrem", cache.make_key(key, version), *encoded), 0, int))


def _zremrangebyscore(
    cache: Backend, key: Any, min: float | str, max: float | str, version: int | None = None
) -> Steps[int]:
    """Number of members removed with a score between ``min`` and ``max``."""
    request = Call("zremrangebyscore", cache.make_key(key, version), min, max)
    return (yield from _ask(request, 0, int))


def _zscore(
    cache: Backend, key: Any, value: Any, version: int | None = None
) -> Steps[float | None]:
    """Score of ``value`` in the sorted set ``key``; None if absent."""
    member = cache.codec.encode_serialized(value)
    try:
        score: float | None = yield Call("zscore", cache.make_key(key, version), member)
    except Unavailable:
        return None
    return score


class HashesSortedSetsMixin:
    """django-redis's hash and sorted-set helpers, each with its async ``a``-twin."""

    hset, ahset = bind(_hset)
    hdel, ahdel = bind(_hdel)
    hlen, ahlen = bind(_hlen)
    hkeys, ahkeys = bind(_hkeys)
    hexists, ahexists = bind(_hexists)

    zadd, azadd = bind(_zadd)
    zcard, azcard = bind(_zcard)
    zcount, azcount = bind(_zcount)
    zincrby, azincrby = bind(_zincrby)
    zpopmax, azpopmax = bind(_zpopmax)
    zpopmin, azpopmin = bind(_zpopmin)
    zrange, azrange = bind(_zrange)
    zrangebyscore, azrangebyscore = bind(_zrangebyscore)
    zrank, azrank = bind(_zrank)
    zrem, azrem = bind(_zrem)
    zremrangebyscore, azremrangebyscore = bind(_zremrangebyscore)
    zrevrange, azrevrange = bind(_zrevrange)
    zrevrangebyscore, azrevrangebyscore = bind(_zrevrangebyscore)
    zscore, azscore = bind(_zscore)
