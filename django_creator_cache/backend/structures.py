"""Redis hash, set and sorted-set helpers, compatible with django-redis 7.0.

Same names, parameters, defaults, member encoding and return values as
django-redis's ``Backend`` (``client/default.py``, ``client/mixins/sorted_sets.py``):
set members are encoded like cache values (integers stay raw), sorted-set members
are always serialised, hash values are encoded like cache values and hash field
names are stored as given. Set-returning helpers build Python sets, so their
members must be hashable (as in django-redis). Differences:

* every helper has a native async twin, ``a`` + its name (``asadd``, ``ahset``,
  ``azadd``...), described by the same steps so it gives the same result;
  ``asscan_iter`` returns an async iterator (``async for member in ...``);
* ``client=`` is keyword-only;
* a Redis failure returns the documented default (``0``, ``False``, an empty
  ``set``/``list`` or ``None``) instead of raising (``STRICT`` raises);
* a member that cannot be decoded is skipped and counted as corrupt;
* ``smove`` builds the destination key with ``version`` too (django-redis
  ignores ``version`` for the destination);
* on Redis Cluster, multi-key set commands over keys in different slots are
  computed client-side (see ``sdiff``), so they are not atomic there.

Sets are here, hashes and sorted sets in ``structures_zsets``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from .execution import Call, Pipe, Steps, Unavailable
from .structures_zsets import HashesSortedSetsMixin, bind, decoded, one_or_many

if TYPE_CHECKING:
    from .protocol import Backend

# Client-side versions of SDIFF, SINTER and SUNION: (first set, other sets) -> result.
_SET_OPS: dict[str, Callable[[set[bytes], list[set[bytes]]], set[bytes]]] = {
    "sdiff": lambda first, rest: first.difference(*rest),
    "sinter": lambda first, rest: first.intersection(*rest),
    "sunion": lambda first, rest: first.union(*rest),
}


def _fulls(cache: Backend, keys: Iterable[Any], version: int | None) -> list[str]:
    return [cache.make_key(key, version) for key in keys]


def _cross_slot(cache: Backend, fulls: list[str]) -> bool:
    """True on a Cluster when ``fulls`` do not all hash to one slot."""
    return cache.cluster and len({key_slot(k.encode()) for k in fulls}) > 1


def _combine(op: str, fulls: list[str]) -> Steps[set[bytes]]:
    """SDIFF/SINTER/SUNION computed in Python from SMEMBERS of each key (one pipeline)."""
    replies = yield Pipe([("SMEMBERS", full) for full in fulls])
    first, *rest = (set(members) for members in replies)
    return _SET_OPS[op](first, rest)


def _set_op(cache: Backend, op: str, fulls: list[str]) -> Steps[set[Any]]:
    try:
        if _cross_slot(cache, fulls):
            found = yield from _combine(op, fulls)
        else:
            found = yield Call(op, *fulls)
    except Unavailable:
        return set()
    return set(decoded(cache, found))


def _set_op_store(cache: Backend, op: str, dest: str, fulls: list[str]) -> Steps[int]:
    try:
        if not _cross_slot(cache, [dest, *fulls]):
            return int((yield Call(f"{op}store", dest, *fulls)))
        found = yield from _combine(op, fulls)
        commands: list[tuple[Any, ...]] = [("DEL", dest)]
        if found:
            commands.append(("SADD", dest, *found))
        yield Pipe(commands)
    except Unavailable:
        return 0
    return len(found)


def _match(cache: Backend, match: str | None) -> Any:
    """The SSCAN ``MATCH`` pattern, encoded like a member (as django-redis does)."""
    if match and cache.options.compressor:
        raise ValueError("Using match with compression is not supported.")
    return cache.codec.encode(match) if match else None


def _sadd(cache: Backend, key: Any, *values: Any, version: int | None = None) -> Steps[int]:
    """Number of members added to the set ``key``."""
    encoded = [cache.codec.encode(v) for v in values]
    try:
        return int((yield Call("sadd", cache.make_key(key, version), *encoded)))
    except Unavailable:
        return 0


def _scard(cache: Backend, key: Any, version: int | None = None) -> Steps[int]:
    """Number of members of the set ``key``."""
    try:
        return int((yield Call("scard", cache.make_key(key, version))))
    except Unavailable:
        return 0


def _sdiff(cache: Backend, *keys: Any, version: int | None = None) -> Steps[set[Any]]:
    """Members of the first set that are in none of the others.

    Cluster, keys in several slots: SMEMBERS of each (one pipeline), combined in
    Python; not atomic, concurrent writes may interleave."""
    return (yield from _set_op(cache, "sdiff", _fulls(cache, keys, version)))


def _sdiffstore(
    cache: Backend,
    dest: Any,
    *keys: Any,
    version_dest: int | None = None,
    version_keys: int | None = None,
) -> Steps[int]:
    """Size of the set ``dest`` after storing ``sdiff(*keys)`` in it.

    Cluster, keys in several slots: computed like ``sdiff``, then DEL + SADD of
    ``dest`` in one pipeline; not atomic, concurrent writes may interleave."""
    full_dest = cache.make_key(dest, version_dest)
    return (yield from _set_op_store(cache, "sdiff", full_dest, _fulls(cache, keys, version_keys)))


def _sinter(cache: Backend, *keys: Any, version: int | None = None) -> Steps[set[Any]]:
    """Members present in every one of the sets (Cluster, several slots: see ``sdiff``)."""
    return (yield from _set_op(cache, "sinter", _fulls(cache, keys, version)))


def _sinterstore(cache: Backend, dest: Any, *keys: Any, version: int | None = None) -> Steps[int]:
    """Size of the set ``dest`` after storing ``sinter(*keys)`` in it (Cluster, several
    slots: see ``sdiffstore``)."""
    full_dest = cache.make_key(dest, version)
    return (yield from _set_op_store(cache, "sinter", full_dest, _fulls(cache, keys, version)))


def _smismember(
    cache: Backend, key: Any, *members: Any, version: int | None = None
) -> Steps[list[bool]]:
    """For each of ``members``, whether it is in the set ``key``."""
    encoded = [cache.codec.encode(m) for m in members]
    try:
        found = yield Call("smismember", cache.make_key(key, version), *encoded)
    except Unavailable:
        return []
    return [bool(value) for value in found]


def _sismember(cache: Backend, key: Any, member: Any, version: int | None = None) -> Steps[bool]:
    """Whether ``member`` is in the set ``key``."""
    encoded = cache.codec.encode(member)
    try:
        return bool((yield Call("sismember", cache.make_key(key, version), encoded)))
    except Unavailable:
        return False


def _smembers(cache: Backend, key: Any, version: int | None = None) -> Steps[set[Any]]:
    """All members of the set ``key``."""
    try:
        found = yield Call("smembers", cache.make_key(key, version))
    except Unavailable:
        return set()
    return set(decoded(cache, found))


def _smove(
    cache: Backend, source: Any, destination: Any, member: Any, version: int | None = None
) -> Steps[bool]:
    """Whether ``member`` was moved from the set ``source`` to ``destination``.

    On Redis Cluster with the keys in different slots: SREM from ``source``,
    then SADD to ``destination`` only if it was removed (not atomic)."""
    src, dst = cache.make_key(source, version), cache.make_key(destination, version)
    encoded = cache.codec.encode(member)
    try:
        if not _cross_slot(cache, [src, dst]):
            return bool((yield Call("smove", src, dst, encoded)))
        if not (yield Call("srem", src, encoded)):
            return False
        yield Call("sadd", dst, encoded)
    except Unavailable:
        return False
    return True


def _spop(
    cache: Backend, key: Any, count: int | None = None, version: int | None = None
) -> Steps[Any]:
    """A removed random member (None if empty), or a set of up to ``count``."""
    try:
        reply = yield Call("spop", cache.make_key(key, version), count)
    except Unavailable:
        return None
    return one_or_many(cache, reply, set)


def _srandmember(
    cache: Backend, key: Any, count: int | None = None, version: int | None = None
) -> Steps[Any]:
    """A random member (None if empty), or a list of ``count`` members."""
    try:
        reply = yield Call("srandmember", cache.make_key(key, version), count)
    except Unavailable:
        return None
    return one_or_many(cache, reply, list)


def _srem(cache: Backend, key: Any, *members: Any, version: int | None = None) -> Steps[int]:
    """Number of members removed from the set ``key``."""
    encoded = [cache.codec.encode(m) for m in members]
    try:
        return int((yield Call("srem", cache.make_key(key, version), *encoded)))
    except Unavailable:
        return 0


def _sscan(
    cache: Backend,
    key: Any,
    match: str | None = None,
    count: int | None = 10,
    version: int | None = None,
) -> Steps[set[Any]]:
    """Members returned by one SSCAN call from cursor 0 (``match`` is encoded)."""
    pattern = _match(cache, match)
    try:
        _cursor, found = yield Call(
            "sscan", cache.make_key(key, version), match=pattern, count=count
        )
    except Unavailable:
        return set()
    return set(decoded(cache, found))


def _sscan_iter(
    cache: Backend,
    key: Any,
    match: str | None = None,
    count: int | None = 10,
    version: int | None = None,
) -> Steps[list[Any]]:
    """Every member, by SSCAN calls until the cursor is back to 0; if Redis fails
    midway, the members read so far."""
    pattern, full = _match(cache, match), cache.make_key(key, version)
    found: list[Any] = []
    cursor = 0
    try:
        while True:
            cursor, batch = yield Call("sscan", full, cursor, match=pattern, count=count)
            found += batch
            if not cursor:
                break
    except Unavailable:
        pass
    return decoded(cache, found)


def _sunion(cache: Backend, *keys: Any, version: int | None = None) -> Steps[set[Any]]:
    """Members present in any of the sets (Cluster, several slots: see ``sdiff``)."""
    return (yield from _set_op(cache, "sunion", _fulls(cache, keys, version)))


def _sunionstore(
    cache: Backend, destination: Any, *keys: Any, version: int | None = None
) -> Steps[int]:
    """Size of the set ``destination`` after storing ``sunion(*keys)`` in it (Cluster,
    several slots: see ``sdiffstore``)."""
    full_dest = cache.make_key(destination, version)
    return (yield from _set_op_store(cache, "sunion", full_dest, _fulls(cache, keys, version)))


class StructuresMixin(HashesSortedSetsMixin):
    """django-redis's set, hash and sorted-set helpers for ``Backend``, each with its
    native async twin."""

    sadd, asadd = bind(_sadd)
    scard, ascard = bind(_scard)
    sdiff, asdiff = bind(_sdiff)
    sdiffstore, asdiffstore = bind(_sdiffstore)
    sinter, asinter = bind(_sinter)
    sinterstore, asinterstore = bind(_sinterstore)
    smismember, asmismember = bind(_smismember)
    sismember, asismember = bind(_sismember)
    smembers, asmembers = bind(_smembers)
    smove, asmove = bind(_smove)
    spop, aspop = bind(_spop)
    srandmember, asrandmember = bind(_srandmember)
    srem, asrem = bind(_srem)
    sscan, asscan = bind(_sscan)
    sunion, asunion = bind(_sunion)
    sunionstore, asunionstore = bind(_sunionstore)
    _sscan_all, _asscan_all = bind(_sscan_iter)

    def sscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        *,
        client: Any = None,
    ) -> Iterator[Any]:
        """An iterator over the members of the set ``key`` (SSCAN until done, ``match``
        encoded). Nothing is sent before the first ``next``; a refused ``match`` raises
        here, as in django-redis."""
        _match(self, match)  # type: ignore[arg-type]
        return self._sscan_lazily(key, match, count, version, client)

    def _sscan_lazily(
        self, key: Any, match: str | None, count: int | None, version: int | None, client: Any
    ) -> Iterator[Any]:
        yield from self._sscan_all(key, match, count, version, client=client)

    def asscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        *,
        client: Any = None,
    ) -> AsyncIterator[Any]:
        """``sscan_iter``'s async twin: ``async for member in cache.asscan_iter(key)``."""
        _match(self, match)  # type: ignore[arg-type]
        return self._asscan_lazily(key, match, count, version, client)

    async def _asscan_lazily(
        self, key: Any, match: str | None, count: int | None, version: int | None, client: Any
    ) -> AsyncIterator[Any]:
        for member in await self._asscan_all(key, match, count, version, client=client):
            yield member
