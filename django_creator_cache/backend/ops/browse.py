"""Browsing an alias's keys (the admin key browser): bounded pages of a cursor SCAN.

A page is a cursor SCAN of one primary after another (every Cluster primary, in
address order), at most ``SCAN_CALLS`` calls, then one pipeline for the page's
type, TTL and memory use (one round trip per node). The cursor handed back says
where the next page starts (``"<node>/<cursor>"``), so a browser pages through
millions of keys without the server or the page holding them all. Keys stay
within the alias: under ``<KEY_PREFIX><separator>`` when it has a prefix, in its
shape (an alias whose prefix extends this one's keeps its keys to itself); the
invalidation indexes (``indexes``) are bookkeeping and never listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import indexes
from ..execution import Pipe, Request, Steps, Unavailable
from . import writes
from .common import text

if TYPE_CHECKING:
    from ..protocol import Backend

# Keys a page holds by default, and at most (SCAN's COUNT is a hint: a page may hold a few more).
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# SCAN calls one page makes at most: a sparse pattern yields a short page and a cursor.
SCAN_CALLS = 50
# Elements of a hash, list, set, sorted set or stream shown, and the largest string read.
SAMPLE_SIZE = 20
MAX_VALUE_BYTES = 1024 * 1024
LENGTH_COMMANDS = {
    "hash": "HLEN",
    "list": "LLEN",
    "set": "SCARD",
    "zset": "ZCARD",
    "stream": "XLEN",
}


@dataclass(frozen=True)
class KeyInfo:
    """One key of a page: its type (``"none"`` if it went meanwhile), the milliseconds
    it has left (None: no expiry) and the bytes it takes (``MEMORY USAGE``)."""

    key: str
    type: str
    ttl_ms: int | None
    size: int | None


@dataclass(frozen=True)
class KeyPage:
    """A page of keys; ``cursor`` is where the next one starts, "" after the last."""

    keys: list[KeyInfo]
    cursor: str
    available: bool = True


@dataclass
class KeyDetail:
    """What the browser shows of one key: ``raw`` is a string's bytes (None if too large
    to read); ``sample`` the first elements of any other type, ``length`` their count."""

    info: KeyInfo
    length: int | None = None
    raw: bytes | None = None
    sample: list[Any] = field(default_factory=list)


def scope(cache: Backend) -> str:
    """What every key the browser may see or change starts with ("" without a KEY_PREFIX)."""
    prefix = str(getattr(cache, "key_prefix", ""))  # Django's ``BaseCache.key_prefix``
    return f"{prefix}{cache.key_separator}" if prefix else ""


def owned(cache: Backend) -> re.Pattern[str] | None:
    """The shape of this alias's keys under its ``KEY_PREFIX`` (``indexes.owned_pattern``),
    or None when there is no prefix to tell them by."""
    return indexes.owned_pattern(cache) if cache.clear_glob() else None


def visible(cache: Backend, key: str, shape: re.Pattern[str] | None) -> bool:
    """Whether the browser lists, shows and may change ``key``: under this alias's prefix,
    in its shape (an alias whose prefix extends this one's keeps its keys), and not the
    invalidation indexes' bookkeeping."""
    if not key.startswith(scope(cache)) or indexes.is_bookkeeping(cache, key):
        return False
    return shape is None or shape.match(key) is not None


def within(cache: Backend, key: str) -> None:
    """Raise ``ValueError`` unless the browser may show and change ``key`` (``visible``)."""
    if not visible(cache, key, owned(cache)):
        raise ValueError(f"{key!r} is not a key of this alias the browser may show or change")


class Primaries(Request):
    """The names of the primaries, in address order ("" for one server or Sentinel)."""

    __slots__ = ()

    def send(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            return sorted(node.name for node in client.get_primaries())
        return [""]

    async def asend(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            await client.initialize()
            return sorted(node.name for node in client.get_primaries())
        return [""]


class ScanNode(Request):
    """One ``SCAN`` call on one primary: ``(next cursor, keys)``; a node no longer a
    primary answers ``(0, [])`` (its keys have moved to the others)."""

    __slots__ = ("args", "node")

    def __init__(self, node: str, cursor: int, glob: str, count: int) -> None:
        super().__init__()
        self.node = node
        self.args = ("SCAN", cursor, "MATCH", glob, "COUNT", count)

    def _target(self, client: Any) -> tuple[bool, dict[str, Any]]:
        if not self.node:
            return True, {}
        node = client.get_node(node_name=self.node)
        if node is None or node not in client.get_primaries():
            return False, {}
        return True, {"target_nodes": node}

    def send(self, client: Any) -> Any:
        found, target = self._target(client)
        return _scan_reply(client.execute_command(*self.args, **target) if found else None)

    async def asend(self, client: Any) -> Any:
        if self.node:
            await client.initialize()
        found, target = self._target(client)
        return _scan_reply(await client.execute_command(*self.args, **target) if found else None)


def _scan_reply(reply: Any) -> tuple[int, list[bytes]]:
    if reply is None:
        return 0, []
    cursor, keys = reply
    if isinstance(cursor, dict):  # a Cluster client names the node it asked
        (cursor,) = cursor.values()
    return int(cursor), list(keys)


def _position(cursor: str) -> tuple[str, int]:
    """``(node, cursor)`` from a page cursor ("" starts at the first primary)."""
    node, _, number = cursor.rpartition("/")
    if number.isdigit() and int(number) < 2**64:
        return node, int(number)
    raise ValueError(f"not a key browser cursor: {cursor!r}")


def browse_keys(
    cache: Backend, pattern: str = "*", cursor: str = "", count: int = PAGE_SIZE
) -> Steps[KeyPage]:
    """A page of this alias's keys matching the glob ``pattern`` (matched against what
    follows ``scope``), with type, TTL and size, from where ``cursor`` says."""
    count = max(1, min(int(count), MAX_PAGE_SIZE))
    glob = (cache.clear_glob() or "*")[:-1] + (pattern or "*")
    node, position = _position(cursor) if cursor else ("", 0)
    try:
        nodes: list[str] = yield Primaries()
        index = nodes.index(node) if node in nodes else 0
        if node and node not in nodes:  # that primary is gone: start again, nothing lost
            position = 0
        found: list[bytes] = []
        seen: set[bytes] = set()
        calls = 0
        shape = owned(cache)
        while index < len(nodes) and len(found) < count and calls < SCAN_CALLS:
            position, keys = yield ScanNode(nodes[index], position, glob, count)
            calls += 1
            for key in keys:  # SCAN may return a key twice while the table is resized
                if not visible(cache, text(key), shape):
                    continue
                if key not in seen:
                    seen.add(key)
                    found.append(key)
            if position == 0:
                index += 1
        commands: list[tuple[Any, ...]] = []
        for key in found:
            commands += [("TYPE", key), ("PTTL", key), ("MEMORY USAGE", key)]
        replies = (yield Pipe(commands)) if commands else []
    except Unavailable:
        return KeyPage([], cursor, available=False)
    infos = [
        _info(key, replies[i * 3], replies[i * 3 + 1], replies[i * 3 + 2])
        for i, key in enumerate(found)
    ]
    infos.sort(key=lambda info: info.key)
    following = f"{nodes[index]}/{position}" if index < len(nodes) else ""
    return KeyPage(infos, following)


def _info(key: bytes | str, kind: Any, pttl: Any, size: Any) -> KeyInfo:
    ttl = int(pttl)
    return KeyInfo(
        key=text(key),
        type=text(kind),
        ttl_ms=None if ttl == -1 else max(ttl, 0),
        size=None if size is None else int(size),
    )


def inspect_key(cache: Backend, key: str, contents: bool = True) -> Steps[KeyDetail | None]:
    """Type, TTL, size and length of one key, and with ``contents`` what it holds (a
    string up to ``MAX_VALUE_BYTES``, else its first ``SAMPLE_SIZE`` elements); None if
    it does not exist. Raises ``CacheUnavailable`` if Redis cannot answer, ``ValueError``
    for a key outside the alias."""
    within(cache, key)
    kind, pttl, size = yield Pipe([("TYPE", key), ("PTTL", key), ("MEMORY USAGE", key)])
    detail = KeyDetail(_info(key, kind, pttl, size))
    kind = detail.info.type
    if kind == "none":
        return None
    if kind == "string":
        commands: list[tuple[Any, ...]] = [("STRLEN", key)]
        if contents:
            commands.append(("GETRANGE", key, 0, MAX_VALUE_BYTES))
        length, *raw = yield Pipe(commands)
        detail.length = int(length)
        if raw and detail.length <= MAX_VALUE_BYTES:
            detail.raw = bytes(raw[0])
        return detail
    if kind not in LENGTH_COMMANDS:
        return detail
    commands = [(LENGTH_COMMANDS[kind], key)]
    if contents:
        commands.append(
            {
                "hash": ("HSCAN", key, 0, "COUNT", SAMPLE_SIZE),
                "list": ("LRANGE", key, 0, SAMPLE_SIZE - 1),
                "set": ("SSCAN", key, 0, "COUNT", SAMPLE_SIZE),
                "zset": ("ZRANGE", key, 0, SAMPLE_SIZE - 1, "WITHSCORES"),
                "stream": ("XRANGE", key, "-", "+", "COUNT", SAMPLE_SIZE),
            }[kind]
        )
    length, *elements = yield Pipe(commands)
    detail.length = int(length)
    if elements:
        detail.sample = _elements(kind, elements[0])[:SAMPLE_SIZE]
    return detail


def _elements(kind: str, reply: Any) -> list[Any]:
    """A sample reply as a list: ``(field, value)`` pairs for hashes, ``(member, score)``
    for sorted sets, ``(id, fields)`` for streams, members otherwise."""
    if kind in ("hash", "set"):
        _, items = reply  # (cursor, items)
        return list(items.items()) if isinstance(items, dict) else list(items)
    if kind == "zset" and reply and not isinstance(reply[0], tuple | list):
        return list(zip(reply[::2], reply[1::2], strict=True))
    return list(reply)


def delete_key(cache: Backend, key: str) -> Steps[bool]:
    """Delete one key of this alias (a full Redis key); True if it existed."""
    within(cache, key)
    deleted = yield ("DEL", key)
    cache.forget_local([key])
    return bool(deleted)


def expire_key(cache: Backend, key: str, seconds: int | None) -> Steps[bool]:
    """Give one key ``seconds`` to live (None: no expiry); False if it does not exist.
    An entry's root index follows, as with ``touch`` (``writes.change_life``)."""
    within(cache, key)
    shape = indexes.owned_pattern(cache)
    found = shape.match(key) if shape is not None else None
    user = key[found.end() :] if found and not key.startswith(indexes.names(cache).head) else ""
    if seconds is None:
        request = Pipe([("PERSIST", key), ("EXISTS", key)])
        return (yield from writes.change_life(cache, user, key, request, None))
    life = max(int(seconds), 1)
    return (yield from writes.change_life(cache, user, key, ("EXPIRE", key, life), life * 1000))
