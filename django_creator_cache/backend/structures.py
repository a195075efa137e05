"""Redis hash, set and sorted-set helpers, compatible with django-redis 7.0.

Same names, signatures, member encoding and return values as django-redis's
``RedisCache`` (``client/default.py``, ``client/mixins/sorted_sets.py``): set
members are encoded like cache values (integers stay raw), sorted-set members
are always serialised, hash values are encoded like cache values and hash field
names are stored as given. Set-returning helpers build Python sets, so their
members must be hashable (as in django-redis). Differences:

* a Redis failure returns the documented default (``0``, ``False``, an empty
  ``set``/``list`` or ``None``) instead of raising (``STRICT`` raises);
* a member that cannot be decoded is skipped and counted as corrupt;
* ``smove`` builds the destination key with ``version`` too (django-redis
  ignores ``version`` for the destination);
* on Redis Cluster, multi-key set commands over keys in different slots are
  computed client-side (see ``sdiff``), so they are not atomic there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from ..exceptions import CorruptValue
SingleMode = Any  # TEMPORARY: being rewritten
mode_for: Any = None
from .policy import REDIS_ERRORS, degrades

if TYPE_CHECKING:
    from .codec import Codec
    from .options import BackendOptions

logger = logging.getLogger("django_creator_cache")

_CORRUPT = object()

# Client-side versions of SDIFF, SINTER and SUNION: (first set, other sets) -> result.
_SET_OPS: dict[str, Callable[[set[bytes], list[set[bytes]]], set[bytes]]] = {
    "sdiff": lambda first, rest: first.difference(*rest),
    "sinter": lambda first, rest: first.intersection(*rest),
    "sunion": lambda first, rest: first.union(*rest),
}


class StructuresMixin:
    """django-redis's set, hash and sorted-set helpers for ``RedisCache``."""

    if TYPE_CHECKING:
        # Provided by RedisCache as cached properties.
        @property
        def _redis(self) -> Any: ...
        @property
        def _codec(self) -> Codec: ...
        @property
        def _mode(self) -> SingleMode: ...
        @property
        def _counters(self) -> Any: ...
        @property
        def options(self) -> BackendOptions: ...

        def make_key(self, key: Any, version: int | None = None) -> str: ...

        def _fail(self, operation: str, exc: BaseException) -> None: ...

    # -- shared helpers --------------------------------------------------------

    def _keys(self, keys: Iterable[Any], version: int | None) -> list[str]:
        return [self.make_key(key, version) for key in keys]

    def _mode_of(self, client: Any) -> SingleMode:
        return self._mode if client is None else mode_for(client)

    def _decode_one(self, raw: Any) -> Any:
        try:
            return self._codec.decode(raw)
        except CorruptValue as exc:
            self._counters.corrupt += 1
            logger.warning("cache: skipping unreadable member: %s", exc)
            return _CORRUPT

    def _decoded(self, raws: Iterable[Any]) -> Iterator[Any]:
        """Decoded members, unreadable ones skipped."""
        return (v for v in map(self._decode_one, raws) if v is not _CORRUPT)

    def _scored(self, pairs: Iterable[Any]) -> list[tuple[Any, Any]]:
        """``(member, score)`` pairs with members decoded, unreadable ones skipped."""
        decoded = ((self._decode_one(member), score) for member, score in pairs)
        return [pair for pair in decoded if pair[0] is not _CORRUPT]

    def _range(self, result: Any, withscores: bool) -> list[Any]:
        return self._scored(result) if withscores else list(self._decoded(result))

    def _single_or_many(self, result: Any, container: Callable[[Iterator[Any]], Any]) -> Any:
        """django-redis's ``_decode_iterable_result``: None, a container, or one value."""
        if result is None:
            return None
        if isinstance(result, list | set):
            return container(self._decoded(result))
        value = self._decode_one(result)
        return None if value is _CORRUPT else value

    def _popped(self, result: Any, count: int | None) -> Any:
        decoded = self._scored(result or [])
        if count is None:
            return decoded[0] if decoded else None
        return decoded

    @staticmethod
    def _cross_slot(mode: SingleMode, keys: list[str]) -> bool:
        """True on a Cluster when ``keys`` do not all hash to one slot."""
        return mode.name == "cluster" and len({key_slot(k.encode()) for k in keys}) > 1

    def _combine(self, op: str, mode: SingleMode, keys: list[str]) -> set[bytes]:
        """SDIFF/SINTER/SUNION computed in Python from one pipelined SMEMBERS per key."""
        pipe = mode.pipeline()
        for key in keys:
            pipe.smembers(key)
        first, *rest = (set(members) for members in pipe.execute())
        return _SET_OPS[op](first, rest)

    def _set_op(self, op: str, keys: list[str], client: Any) -> set[Any]:
        mode = self._mode_of(client)
        if self._cross_slot(mode, keys):
            return set(self._decoded(self._combine(op, mode, keys)))
        return set(self._decoded(getattr(mode.client, op)(*keys)))

    def _set_op_store(self, op: str, dest: str, keys: list[str], client: Any) -> int:
        mode = self._mode_of(client)
        if not self._cross_slot(mode, [dest, *keys]):
            return int(getattr(mode.client, f"{op}store")(dest, *keys))
        members = self._combine(op, mode, keys)
        pipe = mode.pipeline()
        pipe.delete(dest)
        if members:
            pipe.sadd(dest, *members)
        pipe.execute()
        return len(members)

    def _check_match(self, match: str | None) -> Any:
        """The SSCAN ``MATCH`` pattern, encoded like a member (as django-redis does)."""
        if match and self.options.compressor:
            raise ValueError("Using match with compression is not supported.")
        return self._codec.encode(match) if match else None

    # -- sets --------------------------------------------------------------------

    @degrades(0)
    def sadd(self, key: Any, *values: Any, version: int | None = None, client: Any = None) -> int:
        """Number of members added to the set ``key``."""
        full = self.make_key(key, version)
        return int((client or self._redis).sadd(full, *(self._codec.encode(v) for v in values)))

    @degrades(0)
    def scard(self, key: Any, version: int | None = None, client: Any = None) -> int:
        """Number of members of the set ``key``."""
        return int((client or self._redis).scard(self.make_key(key, version)))

    @degrades(set)
    def sdiff(self, *keys: Any, version: int | None = None, client: Any = None) -> set[Any]:
        """Members of the first set that are in none of the others.

        Cluster, keys in several slots: SMEMBERS of each (one pipeline), combined in
        Python; not atomic, concurrent writes may interleave."""
        return self._set_op("sdiff", self._keys(keys, version), client)

    @degrades(0)
    def sdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
        client: Any = None,
    ) -> int:
        """Size of the set ``dest`` after storing ``sdiff(*keys)`` in it.

        Cluster, keys in several slots: computed like ``sdiff``, then DEL + SADD of
        ``dest`` in one pipeline; not atomic, concurrent writes may interleave."""
        full_dest = self.make_key(dest, version_dest)
        return self._set_op_store("sdiff", full_dest, self._keys(keys, version_keys), client)

    @degrades(set)
    def sinter(self, *keys: Any, version: int | None = None, client: Any = None) -> set[Any]:
        """Members present in every one of the sets.

        Cluster, keys in several slots: SMEMBERS of each (one pipeline), combined in
        Python; not atomic, concurrent writes may interleave."""
        return self._set_op("sinter", self._keys(keys, version), client)

    @degrades(0)
    def sinterstore(
        self, dest: Any, *keys: Any, version: int | None = None, client: Any = None
    ) -> int:
        """Size of the set ``dest`` after storing ``sinter(*keys)`` in it.

        Cluster, keys in several slots: computed like ``sinter``, then DEL + SADD of
        ``dest`` in one pipeline; not atomic, concurrent writes may interleave."""
        full_dest = self.make_key(dest, version)
        return self._set_op_store("sinter", full_dest, self._keys(keys, version), client)

    @degrades(list)
    def smismember(
        self, key: Any, *members: Any, version: int | None = None, client: Any = None
    ) -> list[bool]:
        """For each of ``members``, whether it is in the set ``key``."""
        encoded = [self._codec.encode(m) for m in members]
        found = (client or self._redis).smismember(self.make_key(key, version), *encoded)
        return [bool(value) for value in found]

    @degrades(False)
    def sismember(
        self, key: Any, member: Any, version: int | None = None, client: Any = None
    ) -> bool:
        """Whether ``member`` is in the set ``key``."""
        full = self.make_key(key, version)
        return bool((client or self._redis).sismember(full, self._codec.encode(member)))

    @degrades(set)
    def smembers(self, key: Any, version: int | None = None, client: Any = None) -> set[Any]:
        """All members of the set ``key``."""
        return set(self._decoded((client or self._redis).smembers(self.make_key(key, version))))

    @degrades(False)
    def smove(
        self,
        source: Any,
        destination: Any,
        member: Any,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        """Whether ``member`` was moved from the set ``source`` to ``destination``.

        On Redis Cluster with the keys in different slots: SREM from ``source``,
        then SADD to ``destination`` only if it was removed (not atomic)."""
        src, dst = self.make_key(source, version), self.make_key(destination, version)
        encoded = self._codec.encode(member)
        mode = self._mode_of(client)
        redis: Any = mode.client
        if not self._cross_slot(mode, [src, dst]):
            return bool(redis.smove(src, dst, encoded))
        if not redis.srem(src, encoded):
            return False
        redis.sadd(dst, encoded)
        return True

    @degrades(None)
    def spop(
        self, key: Any, count: int | None = None, version: int | None = None, client: Any = None
    ) -> Any:
        """A removed random member (None if empty), or a set of up to ``count``."""
        result = (client or self._redis).spop(self.make_key(key, version), count)
        return self._single_or_many(result, set)

    @degrades(None)
    def srandmember(
        self, key: Any, count: int | None = None, version: int | None = None, client: Any = None
    ) -> Any:
        """A random member (None if empty), or a list of ``count`` members."""
        result = (client or self._redis).srandmember(self.make_key(key, version), count)
        return self._single_or_many(result, list)

    @degrades(0)
    def srem(self, key: Any, *members: Any, version: int | None = None, client: Any = None) -> int:
        """Number of members removed from the set ``key``."""
        full = self.make_key(key, version)
        return int((client or self._redis).srem(full, *(self._codec.encode(m) for m in members)))

    @degrades(set)
    def sscan(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> set[Any]:
        """Members returned by one SSCAN call from cursor 0 (``match`` is encoded)."""
        pattern = self._check_match(match)
        redis = client or self._redis
        _cursor, found = redis.sscan(self.make_key(key, version), match=pattern, count=count)
        return set(self._decoded(found))

    # Not wrapped in @degrades: nothing reaches Redis until iteration, where
    # ``_sscan_iter`` handles failures itself (iteration simply stops).
    def sscan_iter(
        self,
        key: Any,
        match: str | None = None,
        count: int | None = 10,
        version: int | None = None,
        client: Any = None,
    ) -> Iterator[Any]:
        """An iterator over the members of the set ``key`` (SSCAN, ``match`` encoded)."""
        pattern = self._check_match(match)
        return self._sscan_iter(self.make_key(key, version), pattern, count, client)

    def _sscan_iter(self, full: str, pattern: Any, count: int | None, client: Any) -> Iterator[Any]:
        try:
            yield from self._decoded(
                (client or self._redis).sscan_iter(full, match=pattern, count=count)
            )
        except REDIS_ERRORS as exc:
            self._fail("sscan_iter", exc)

    @degrades(set)
    def sunion(self, *keys: Any, version: int | None = None, client: Any = None) -> set[Any]:
        """Members present in any of the sets.

        Cluster, keys in several slots: SMEMBERS of each (one pipeline), combined in
        Python; not atomic, concurrent writes may interleave."""
        return self._set_op("sunion", self._keys(keys, version), client)

    @degrades(0)
    def sunionstore(
        self, destination: Any, *keys: Any, version: int | None = None, client: Any = None
    ) -> int:
        """Size of the set ``destination`` after storing ``sunion(*keys)`` in it.

        Cluster, keys in several slots: computed like ``sunion``, then DEL + SADD of
        ``destination`` in one pipeline; not atomic, concurrent writes may interleave."""
        full_dest = self.make_key(destination, version)
        return self._set_op_store("sunion", full_dest, self._keys(keys, version), client)

    # -- hashes ------------------------------------------------------------------

    @degrades(0)
    def hset(
        self,
        key: Any,
        field: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> int:
        """Number of fields added (not updated) to the hash ``key``."""
        encode = self._codec.encode
        return int(
            (client or self._redis).hset(
                self.make_key(key, version),
                key=field,
                value=encode(value) if value is not None else None,
                mapping={f: encode(v) for f, v in mapping.items()} if mapping is not None else None,
            )
        )

    @degrades(0)
    def hdel(self, key: Any, field: Any, version: int | None = None, client: Any = None) -> int:
        """Number of fields removed from the hash ``key`` (0 or 1)."""
        return int((client or self._redis).hdel(self.make_key(key, version), field))

    @degrades(0)
    def hlen(self, key: Any, version: int | None = None, client: Any = None) -> int:
        """Number of fields in the hash ``key``."""
        return int((client or self._redis).hlen(self.make_key(key, version)))

    @degrades(list)
    def hkeys(self, key: Any, version: int | None = None, client: Any = None) -> list[str]:
        """Field names of the hash ``key``, as str."""
        fields = (client or self._redis).hkeys(self.make_key(key, version))
        return [f.decode() if isinstance(f, bytes) else f for f in fields]

    @degrades(False)
    def hexists(self, key: Any, field: Any, version: int | None = None, client: Any = None) -> bool:
        """Whether ``field`` exists in the hash ``key``."""
        return bool((client or self._redis).hexists(self.make_key(key, version), field))

    # -- sorted sets ---------------------------------------------------------------

    @degrades(0)
    def zadd(
        self,
        key: Any,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
        client: Any = None,
    ) -> Any:
        """Number of members added (changed with ``ch``); the new score with ``incr``."""
        encoded = {self._codec.encode_serialized(m): score for m, score in mapping.items()}
        return (client or self._redis).zadd(
            self.make_key(key, version), encoded, nx=nx, xx=xx, ch=ch, incr=incr, gt=gt, lt=lt
        )

    @degrades(0)
    def zcard(self, key: Any, version: int | None = None, client: Any = None) -> int:
        """Number of members of the sorted set ``key``."""
        return int((client or self._redis).zcard(self.make_key(key, version)))

    @degrades(0)
    def zcount(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        version: int | None = None,
        client: Any = None,
    ) -> int:
        """Number of members with a score between ``min`` and ``max``."""
        return int((client or self._redis).zcount(self.make_key(key, version), min, max))

    @degrades(None)
    def zincrby(
        self, key: Any, amount: float, value: Any, version: int | None = None, client: Any = None
    ) -> float | None:
        """The new score of ``value`` after adding ``amount``."""
        full = self.make_key(key, version)
        score: float | None = (client or self._redis).zincrby(
            full, amount, self._codec.encode_serialized(value)
        )
        return score

    @degrades(None)
    def zpopmax(
        self, key: Any, count: int | None = None, version: int | None = None, client: Any = None
    ) -> list[tuple[Any, float]] | tuple[Any, float] | None:
        """The removed highest ``(member, score)`` (None if empty), or a list of ``count``."""
        result = (client or self._redis).zpopmax(self.make_key(key, version), count)
        return self._popped(result, count)  # type: ignore[no-any-return]

    @degrades(None)
    def zpopmin(
        self, key: Any, count: int | None = None, version: int | None = None, client: Any = None
    ) -> list[tuple[Any, float]] | tuple[Any, float] | None:
        """The removed lowest ``(member, score)`` (None if empty), or a list of ``count``."""
        result = (client or self._redis).zpopmin(self.make_key(key, version), count)
        return self._popped(result, count)  # type: ignore[no-any-return]

    @degrades(list)
    def zrange(
        self,
        key: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Members ranked ``start``..``end`` (inclusive), as ``(member, score)`` if asked."""
        result = (client or self._redis).zrange(
            self.make_key(key, version),
            start,
            end,
            desc=desc,
            withscores=withscores,
            score_cast_func=score_cast_func,
        )
        return self._range(result, withscores)

    @degrades(list)
    def zrangebyscore(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Members scored ``min``..``max``, lowest first, as ``(member, score)`` if asked."""
        result = (client or self._redis).zrangebyscore(
            self.make_key(key, version),
            min,
            max,
            start=start,
            num=num,
            withscores=withscores,
            score_cast_func=score_cast_func,
        )
        return self._range(result, withscores)

    @degrades(None)
    def zrank(
        self,
        key: Any,
        value: Any,
        withscore: bool = False,
        version: int | None = None,
        client: Any = None,
    ) -> Any:
        """Rank of ``value`` (lowest score first), ``[rank, score]`` with ``withscore``;
        None if absent."""
        return (client or self._redis).zrank(
            self.make_key(key, version), self._codec.encode_serialized(value), withscore=withscore
        )

    @degrades(0)
    def zrem(self, key: Any, *values: Any, version: int | None = None, client: Any = None) -> int:
        """Number of members removed from the sorted set ``key``."""
        encoded = [self._codec.encode_serialized(v) for v in values]
        return int((client or self._redis).zrem(self.make_key(key, version), *encoded))

    @degrades(0)
    def zremrangebyscore(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        version: int | None = None,
        client: Any = None,
    ) -> int:
        """Number of members removed with a score between ``min`` and ``max``."""
        full = self.make_key(key, version)
        return int((client or self._redis).zremrangebyscore(full, min, max))

    @degrades(list)
    def zrevrange(
        self,
        key: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Members ranked ``start``..``end`` from the highest score, as pairs if asked."""
        result = (client or self._redis).zrevrange(
            self.make_key(key, version),
            start,
            end,
            withscores=withscores,
            score_cast_func=score_cast_func,
        )
        return self._range(result, withscores)

    @degrades(list)
    def zrevrangebyscore(
        self,
        key: Any,
        max: float | str,
        min: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Members scored ``max``..``min``, highest first, as ``(member, score)`` if asked."""
        result = (client or self._redis).zrevrangebyscore(
            self.make_key(key, version),
            max,
            min,
            start=start,
            num=num,
            withscores=withscores,
            score_cast_func=score_cast_func,
        )
        return self._range(result, withscores)

    @degrades(None)
    def zscore(
        self, key: Any, value: Any, version: int | None = None, client: Any = None
    ) -> float | None:
        """Score of ``value`` in the sorted set ``key``; None if absent."""
        full = self.make_key(key, version)
        score: float | None = (client or self._redis).zscore(
            full, self._codec.encode_serialized(value)
        )
        return score
