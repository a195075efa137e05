"""Membership indexes that make prefix and tag invalidation cost what it deletes.

Every write of a key that contains the separator is indexed under its *root* (its
first part): ``campaigns:user-1:list`` joins the index of ``campaigns``, once, as
the member ``user-1:list`` (the root is in the index's name; a version other than
1 is appended after a NUL, a key the default key function did not build is stored
whole). Every member scores 0, so the members under any deeper prefix are one lex
range: ``invalidate_prefix("campaigns:user-1")`` is the range
``[user-1: .. (user-1;`` of that index. A tag has an index of the same shape
holding the user keys. One member per entry, whatever its depth: the write adds it
in the same atomic step as its ``SET``, one round trip: on one server the common case
(one index, a plain write, nothing to sweep) is a MULTI/EXEC of plain commands (SET,
ZADD, PEXPIRE), which costs the server about half a script; the rest is a Lua script.

On Redis Cluster an index is split into *shards*, one per slot in use: the shard of
an entry carries a hash tag that maps to the entry's own slot, so the write script
touches one slot. Each root (and tag) has a *record*, a bitmap of the slots whose
shards may hold members; a process sets the slot's bit *before* its first write there
(remembered for ``MEMO_SECONDS``), so an invalidation that reads the record either
finds the shard or ran before the entry existed. Bits are never cleared while the
record lives, and it lives as long as the entries it covers. A single server or
Sentinel has one shard per root or tag and no record. A shard is created with a
placeholder member "" that is never drained: a write that finds its shard missing
(a flush behind the package's back) writes the record again before it returns.

Invalidation drains each shard with a script that takes at most ``DRAIN_BATCH``
members in range, deletes their keys and removes them from the shard in one atomic
step, again while batches come back full: a reply lost in between leaves a
consistent state that a retry finishes, and no script runs long.

Expired members are pruned by the writes that add members: one such write in
``SWEEP_EVERY`` checks ``SWEEP_SIZE`` members from a random rank of the index it grew
and removes those whose key is gone, two checks per new member on average, which
keeps dead members at most as many as live ones under a stream of ever-new keys;
rewriting keys that are already members (a steady keyspace) sweeps nothing. A shard's
expiry is pushed a quarter past its entries' (``shard_px``) by a process that has not
done so lately, so an index expires with its longest-lived entry, or never while it
holds one without.
"""

from __future__ import annotations

import binascii
import random
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .protocol import Backend

# What ``cache_invalidate`` and the admin name a prefix and a tag.
PREFIX = "p"
TAG = "t"
# Internal key kinds: index shards of roots and tags, and their slot records.
ROOT_SHARD, TAG_SHARD, ROOT_RECORD, TAG_RECORD = "ir", "it", "sr", "st"
BOOKKEEPING = (ROOT_SHARD, TAG_SHARD, ROOT_RECORD, TAG_RECORD)
# Members one drain script takes at most (well under a millisecond of Redis time).
DRAIN_BATCH = 250
# Drain scripts per shard in one call at most; past it the call raises (retry it).
MAX_DRAINS = 100_000
# Drain scripts per pipeline: a server runs a pipeline's commands back to back, so a
# few milliseconds of work at most (16 unknown shards over a Cluster's primaries, 4
# known full: 1,000 members), whatever else shares the machine.
FIRST_PIPE = 16
FULL_PIPE = 4
# Entries per write script (set_many on one slot): bounds one script's run time.
ENTRIES_PER_SCRIPT = 100
# One write in SWEEP_EVERY that adds a member prunes SWEEP_SIZE members of that index.
SWEEP_EVERY = 16
# Seconds a process trusts that a (record, slot) it wrote is still there.
MEMO_SECONDS = 60.0
SLOTS = 16384
# The expiry of an index shard that holds an entry without one (a century).
FOREVER_PX = 100 * 365 * 86_400_000


def track_prefixes(*roots: str) -> None:
    """Deprecated, does nothing: every prefix is tracked now (``OPTIONS["TRACK_WRITES"]``)."""
    warnings.warn(
        "track_prefixes() is no longer needed: every write under a prefix is indexed",
        DeprecationWarning,
        stacklevel=2,
    )


# -- call forms ------------------------------------------------------------------------------


def tag_names(tags: Any) -> tuple[str, ...]:
    """Tags as given to a write: None, one string, or any iterable of strings."""
    if tags is None:
        return ()
    if isinstance(tags, str | bytes):
        tags = (tags,)
    names = tuple(dict.fromkeys(t.decode() if isinstance(t, bytes) else str(t) for t in tags))
    if "" in names:
        raise ValueError("a tag must not be empty")
    return names


def flatten(names: Sequence[Any]) -> tuple[str, ...]:
    """``invalidate_tags("a", "b")``, ``(["a", "b"])`` or a mix: the names, in order."""
    out: list[str] = []
    for name in names:
        out += tag_names(name)
    return tuple(dict.fromkeys(out))


def checked_prefix(prefix: Any, separator: str) -> tuple[str, str]:
    """``(root, rest)`` of a prefix to invalidate (rest "" for a root); ``ValueError`` for
    an empty prefix or an empty part (``"campaigns:"``, ``"a::b"``): it would widen."""
    text = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
    if not text:
        raise ValueError("an empty prefix would be everything: use clear()")
    parts = text.split(separator)
    if not all(parts):
        raise ValueError(
            f"prefix {text!r} has an empty part (separator {separator!r}): it would cover "
            "more than meant; name the prefix without a leading, trailing or doubled separator"
        )
    return parts[0], text[len(parts[0]) + len(separator) :] if len(parts) > 1 else ""


def lex_range(rest: str, separator: str) -> tuple[str, str]:
    """The members of a root's index under ``root<sep>rest`` (all of it for rest "")."""
    if not rest:
        return "(", "+"  # every member but the shard's placeholder ""
    above = separator[:-1] + chr(ord(separator[-1]) + 1)
    return f"[{rest}{separator}", f"({rest}{above}"


# -- names -----------------------------------------------------------------------------------


def slot_of(key: bytes) -> int:
    """Redis Cluster's slot of ``key`` (CRC16 of its hash tag, or of the whole key)."""
    start = key.find(b"{")
    if start > -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def to_bytes(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogateescape")


_tags: list[str] = []


def slot_tag(slot: int) -> str:
    """A short string whose hash slot is ``slot`` (the table is built once per process)."""
    if not _tags:
        table: list[str | None] = [None] * SLOTS
        missing = SLOTS
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        candidates: list[str] = [""]
        while missing:
            candidates = [c + a for c in candidates for a in alphabet]
            for text in candidates:
                at = binascii.crc_hqx(text.encode(), 0) % SLOTS
                if table[at] is None:
                    table[at] = text
                    missing -= 1
        _tags.extend(t for t in table if t is not None)
    return _tags[slot]


class Names:
    """How one alias names its index shards, records and members (pure, cached per alias)."""

    __slots__ = (
        "_shards",
        "base",
        "cluster",
        "custom",
        "head",
        "key_prefix",
        "location",
        "sep",
        "single_slot",
    )

    def __init__(self, cache: Backend) -> None:
        self.sep = sep = cache.key_separator
        self.key_prefix = str(getattr(cache, "key_prefix", ""))
        self.base = f"{self.key_prefix}{sep}"
        self.head = cache.internal_key("")  # "<KEY_PREFIX>:dcc:"
        self.custom = bool(getattr(cache, "_custom_key_func", False))
        self.cluster = cache.cluster
        self.single_slot = not self.cluster
        self._shards: dict[tuple[str, str, int | None], str] = {}
        self.location = cache.options.safe_location  # what per-process memories are kept by
        if self.cluster and ("{" in self.head or "}" in self.head):
            start = self.head.find("{")
            end = self.head.find("}", start + 1)
            if start == -1 or end <= start + 1:
                raise ImproperlyConfigured(
                    f"KEY_PREFIX {self.key_prefix!r} has an unbalanced brace: on Redis Cluster "
                    "it would split an alias's keys from their invalidation indexes"
                )
            self.single_slot = True  # a hash tag in KEY_PREFIX: every key on one slot

    def sharded(self) -> bool:
        return not self.single_slot

    def shard(self, kind: str, name: str, slot: int | None) -> str:
        """The index shard of root or tag ``name`` on ``slot`` (None: the only one)."""
        memo = (kind, name, slot)
        made = self._shards.get(memo)
        if made is None:
            if slot is None:
                made = f"{self.head}{kind}{self.sep}{name}"
            else:
                made = f"{self.head}{kind}{self.sep}{{{slot_tag(slot)}}}{self.sep}{name}"
            if len(self._shards) < 100_000:
                self._shards[memo] = made
        return made

    def record(self, kind: str, name: str) -> str:
        return f"{self.head}{kind}{self.sep}{name}"

    def root_of(self, key: str) -> str | None:
        """The root a user key is indexed under (None: no separator, or an empty root)."""
        at = key.find(self.sep)
        return key[:at] if at > 0 else None

    def member(self, key: str, full: str, version: int, skip: int) -> str:
        """How an index names the entry ``full`` of user key ``key``: ``key[skip:]`` (the
        part after the root and separator in a root's index, all of it in a tag's), with
        the version after a NUL unless 1; the full key itself when the default key
        function did not build it (custom function, long key hashed)."""
        rest = key[skip:]
        if rest and "\0" not in key and full == f"{self.base}{version}{self.sep}{key}":
            return rest if version == 1 else f"{rest}\0{version}"
        if "\0" in full:
            return f"{rest}\0#{full.encode('utf-8', 'surrogateescape').hex()}"
        return f"{rest}\0~{full}"


_NAMES: dict[int, tuple[Any, Names]] = {}


def names(cache: Backend) -> Names:
    """The alias's ``Names`` (rebuilt when its options object changes: settings overrides)."""
    memo = _NAMES.get(id(cache))
    if memo is not None and memo[0] is cache.options:
        return memo[1]
    made = Names(cache)
    _NAMES[id(cache)] = (cache.options, made)
    return made


def is_bookkeeping(cache: Backend, key: str) -> bool:
    """Whether ``key`` is an index shard or record of this alias (hidden from browsing)."""
    n = names(cache)
    return key.startswith(n.head) and key[len(n.head) :].split(n.sep, 1)[0] in BOOKKEEPING


def owned_pattern(cache: Backend) -> re.Pattern[str] | None:
    """What this alias's keys look like under its ``KEY_PREFIX``: ``<prefix><sep><version
    or dcc><sep>`` (None with a custom key function: its keys have no known shape).

    ``clear`` and the key browser filter with it, so an alias whose prefix extends
    this one's (``app`` and ``app:tenant2``) keeps its keys."""
    n = names(cache)
    if n.custom:
        return None
    sep = re.escape(n.sep)
    return re.compile(f"{re.escape(n.key_prefix)}{sep}(?:-?[0-9]+|dcc){sep}", re.DOTALL)


# -- records: which slots a root or tag uses (Cluster) ----------------------------------------


def slots_of(bitmap: bytes) -> list[int]:
    """The slots whose bits a record has set (``SETBIT`` order: high bit first)."""
    return [
        at * 8 + bit
        for at, byte in enumerate(bitmap)
        if byte
        for bit in range(8)
        if byte & (0x80 >> bit)
    ]


# (alias location, record key, slot) -> (trusted until, monotonic; entries covered until, ms)
_recorded: dict[tuple[str, str, int], tuple[float, float]] = {}


def forget_pairs(cache: Backend, pairs: Iterable[tuple[str, int]]) -> None:
    """Drop this process's memory of these (record, slot) pairs: written again next time."""
    location = names(cache).location
    for record, slot in pairs:
        _recorded.pop((location, record, slot), None)


def forget_lives(cache: Backend, shards: Iterable[str]) -> None:
    """Drop this process's memory of these shards' lives: the next write sets them."""
    location = names(cache).location
    for shard in shards:
        _lives.pop((location, shard), None)


def forget_records(cache: Backend) -> None:
    """Drop this process's memory of the records of ``cache``'s location (``clear``)."""
    location = names(cache).location
    for memo in [m for m in _recorded if m[0] == location]:
        _recorded.pop(memo, None)
    for life in [m for m in _lives if m[0] == location]:
        _lives.pop(life, None)


# (alias location, shard) -> (trusted until, the shard lives at least until): monotonic s
_lives: dict[tuple[str, str], tuple[float, float]] = {}


def shard_px(px: int | None) -> int:
    """How long a shard is made to live for an entry living ``px`` ms: a quarter more, so
    that a process pushes a busy shard's expiry out now and then only. An entry without
    expiry makes it live ``FOREVER_PX`` (every shard has an expiry: the scripts set and
    push one without a case for "none")."""
    return FOREVER_PX if px is None else px + px // 4


class Lives:
    """Whether a write of entries living ``px`` ms must push its shards' expiry out, read
    from this process's memory (``extended``) against one clock reading: a batch asks
    once per entry without reading the clock again."""

    __slots__ = ("location", "needed", "now")

    def __init__(self, cache: Backend, px: int | None) -> None:
        self.location = names(cache).location
        self.now = now = time.monotonic()  # one clock for both: durations from now
        self.needed = float("inf") if px is None else now + px / 1000

    def push(self, shards: Iterable[str]) -> str:
        """'1' unless this process made every one of ``shards`` live past the entry
        lately (``MEMO_SECONDS``): then the write leaves their expiry alone."""
        location, now, needed = self.location, self.now, self.needed
        for shard in shards:
            memo = _lives.get((location, shard))
            if memo is None or memo[0] < now or memo[1] < needed:
                return "1"
        return "0"


def extended(cache: Backend, shards: Iterable[str], px: int | None) -> None:
    location = names(cache).location
    if len(_lives) > 100_000:
        _lives.clear()
    now = time.monotonic()
    until = float("inf") if px is None else now + shard_px(px) / 1000
    trusted = now + MEMO_SECONDS
    for shard in shards:
        _lives[(location, shard)] = (trusted, until)


def now_ms() -> int:
    return int(time.time() * 1000)


def needed_records(
    cache: Backend, wanted: Iterable[tuple[str, int]], px: int | None
) -> list[tuple[str, int]]:
    """The (record, slot) pairs this process must write before entries living ``px`` ms."""
    location = names(cache).location
    now, wall = time.monotonic(), now_ms()
    until = float("inf") if px is None else wall + px
    return [
        (record, slot)
        for record, slot in dict.fromkeys(wanted)
        if not ((m := _recorded.get((location, record, slot))) and m[0] > now and m[1] >= until)
    ]


def remember_records(cache: Backend, done: Iterable[tuple[str, int]], px: int | None) -> None:
    location = names(cache).location
    covered = float("inf") if px is None else now_ms() + record_px(px)
    trusted = time.monotonic() + MEMO_SECONDS
    for record, slot in done:
        _recorded[(location, record, slot)] = (trusted, covered)


def record_px(px: int) -> int:
    """A record outlives its entries by twice the memo's life (0: no expiry)."""
    return px + int(2 * MEMO_SECONDS * 1000)


def sweep_rank() -> float:
    """A random fraction for one write in ``SWEEP_EVERY`` (the script prunes from there),
    else -1."""
    draw = random.random() * SWEEP_EVERY
    return draw if draw < 1 else -1


class IncompleteInvalidation(RuntimeError):
    """The cause of ``CacheUnavailable`` when a drain hit its cap (``MAX_DRAINS``)."""
