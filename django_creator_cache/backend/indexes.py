"""Membership indexes that make prefix and tag invalidation cost what it deletes.

Every write of a key that contains the separator is indexed under its *root* (its
first part): ``campaigns:user-1:list`` joins the index of ``campaigns``, once, as
the member ``user-1:list`` (the root is in the index's name; a version other than
1 is appended after a NUL, a key the default key function did not build is stored
whole). Every member scores 0, so the members under any deeper prefix are one lex
range: ``invalidate_prefix("campaigns:user-1")`` is the range
``[user-1: .. (user-1;`` of that index. A tag has an index of the same shape
holding the user keys. One member per entry, whatever its depth: the write costs
one ``ZADD`` inside the same Lua script as its ``SET`` (one round trip, atomic),
and a tracked entry costs about a short sorted-set member of memory.

On Redis Cluster an index is split into *shards*, one per slot in use: the shard of
an entry carries a hash tag that maps to the entry's own slot, so the write script
touches one slot. Each root (and tag) has a *record*, a bitmap of the slots whose
shards may hold members; a process adds the slot to the record *before* its first
write there (remembered for ``MEMO_SECONDS``), so an invalidation that reads the
record either finds the shard or runs before the entry exists. Slots are never
removed from a record while it lives; a record lives as long as the entries it
covers (``PEXPIRE`` pushed forward, or no expiry). A single server or Sentinel has
one shard per root or tag and no record.

Invalidation drains each shard with a script that takes at most ``DRAIN_BATCH``
members in range, deletes their keys and removes them from the shard in one atomic
step, again and again until a batch comes back short: a reply lost in between
leaves a consistent state that a retry finishes.

Expired members are pruned by the writes: one write in ``SWEEP_EVERY`` checks
``SWEEP_SIZE`` members from a random rank of each index it joins and removes those
whose key is gone. Under a stream of ever-new keys this keeps dead members below
``1 / (SWEEP_SIZE / SWEEP_EVERY - 1)`` of the live ones (a third); an index also
expires with its longest-lived member.
"""

from __future__ import annotations

import binascii
import random
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import NoScriptError

from .execution import Pipe, Request, Script, Steps, Unavailable, pipeline
from .scripts import LuaScript

if TYPE_CHECKING:
    from .protocol import Backend

# Kept so ``track_prefixes`` (now unneeded: every prefix is tracked) keeps importing.
declared_roots: set[str] = set()

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
# Drain scripts per pipeline: a server runs a pipeline's commands back to back, so at
# most about 10 ms of work (32 unknown shards over a Cluster's primaries, 8 known full).
FIRST_PIPE = 32
FULL_PIPE = 8
# Entries per write script (set_many on one slot): bounds one script's run time.
ENTRIES_PER_SCRIPT = 100
# One write in SWEEP_EVERY prunes SWEEP_SIZE members of each index it joins.
SWEEP_EVERY = 8
SWEEP_SIZE = 16
# Seconds a process trusts that a (record, slot) it wrote is still there.
MEMO_SECONDS = 60.0
SLOTS = 16384


def track_prefixes(*roots: str) -> None:
    """Deprecated and harmless: every prefix is tracked now (``OPTIONS["TRACK_WRITES"]``)."""
    declared_roots.update(str(root) for root in roots)


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


def _slot(key: bytes) -> int:
    """Redis Cluster's slot of ``key`` (CRC16 of its hash tag, or of the whole key)."""
    start = key.find(b"{")
    if start > -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def _bytes(key: Any) -> bytes:
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


def forget_records(cache: Backend) -> None:
    """Drop this process's memory of the records of ``cache``'s location (``clear``)."""
    location = names(cache).location
    for memo in [m for m in _recorded if m[0] == location]:
        _recorded.pop(memo, None)
    for life in [m for m in _lives if m[0] == location]:
        _lives.pop(life, None)


# (alias location, shard) -> (trusted until, monotonic; the shard lives at least until, ms)
_lives: dict[tuple[str, str], tuple[float, float]] = {}


def shard_px(px: int | None) -> int:
    """How long a shard is made to live for an entry living ``px`` ms (0: no expiry): a
    quarter more, so that a process pushes a busy shard's expiry out now and then only."""
    return 0 if px is None else px + px // 4


def extend(cache: Backend, shards: Sequence[str], px: int | None) -> str:
    """'1' unless this process made every one of ``shards`` live past an entry of ``px``
    ms lately (``MEMO_SECONDS``): then the write script leaves their expiry alone."""
    location = names(cache).location
    now, needed = time.monotonic(), float("inf") if px is None else now_ms() + px
    for shard in shards:
        memo = _lives.get((location, shard))
        if memo is None or memo[0] < now or memo[1] < needed:
            return "1"
    return "0"


def extended(cache: Backend, shards: Iterable[str], px: int | None) -> None:
    location = names(cache).location
    if len(_lives) > 100_000:
        _lives.clear()
    until = float("inf") if px is None else now_ms() + shard_px(px)
    trusted = time.monotonic() + MEMO_SECONDS
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


def record_calls(pairs: Iterable[tuple[str, int]], px: int | None) -> list[tuple[Any, ...]]:
    """One ``RECORD`` script call per record for ``pairs``."""
    by_record: dict[str, list[int]] = {}
    for record, slot in pairs:
        by_record.setdefault(record, []).append(slot)
    life = 0 if px is None else record_px(px)
    return [(RECORD, [record], [life, *slots]) for record, slots in by_record.items()]


# -- pipelines of scripts ----------------------------------------------------------------------


class Scripts(Request):
    """Several Lua script calls in one pipeline (one round trip per node), each atomic.

    ``calls`` are ``(LuaScript, keys, args)`` or plain commands; replies come back in
    order. A server that lacks a script answers NOSCRIPT for it (it did not run): the
    script is loaded and those calls alone are sent again. Any other error reply fails the request.
    """

    __slots__ = ("calls",)

    def __init__(self, calls: Sequence[tuple[Any, ...]]) -> None:
        super().__init__()
        self.calls = calls

    def _pipe(self, client: Any, todo: list[int], routed: bool = False) -> Any:
        pipe = pipeline(client)
        for at in todo:
            call = self.calls[at]
            if isinstance(call[0], LuaScript):
                script, keys, args = call
                command = ("EVALSHA", script.sha, len(keys), *keys, *args)
                if routed:  # redis-py's sync Cluster pipeline asks the server for a
                    # script's keys (COMMAND GETKEYS, a round trip per call): name the node
                    node = client.nodes_manager.get_node_from_slot(_slot(_bytes(keys[0])))
                    pipe.execute_command(*command, target_nodes=node)
                else:
                    pipe.execute_command(*command)
            else:
                pipe.execute_command(*call)
        return pipe

    def _missing(self, replies: list[Any], todo: list[int], out: list[Any]) -> list[int]:
        again = []
        for at, reply in zip(todo, replies, strict=True):
            if isinstance(reply, NoScriptError):
                again.append(at)
            elif isinstance(reply, Exception):
                raise reply
            else:
                out[at] = reply
        return again

    def send(self, client: Any) -> Any:
        out: list[Any] = [None] * len(self.calls)
        todo = list(range(len(self.calls)))
        routed = hasattr(client, "nodes_manager")
        for _ in range(2):
            todo = self._missing(self._pipe(client, todo, routed).execute(False), todo, out)
            if not todo:
                break
            for script in {self.calls[at][0] for at in todo}:
                client.script_load(script.source)
        if todo:
            raise NoScriptError("scripts could not be loaded")
        return out

    async def asend(self, client: Any) -> Any:
        out: list[Any] = [None] * len(self.calls)
        todo = list(range(len(self.calls)))
        for _ in range(2):
            todo = self._missing(await self._pipe(client, todo).execute(False), todo, out)
            if not todo:
                break
            for script in {self.calls[at][0] for at in todo}:
                await client.script_load(script.source)
        if todo:
            raise NoScriptError("scripts could not be loaded")
        return out


def sweep_rank() -> float:
    """A random fraction for one write in ``SWEEP_EVERY`` (the script prunes from there),
    else -1."""
    return random.random() if random.randrange(SWEEP_EVERY) == 0 else -1


# -- scripts ---------------------------------------------------------------------------------

# The full Redis key of a member (see ``Names.member``): ``base`` is "<KEY_PREFIX><sep>",
# ``skip`` the "<root><sep>" a root's index leaves out ("" in a tag's).
_FULL_OF = """
local function full_of(m, base, sep, skip)
  local at = nil
  local i = string.find(m, '\\0', 1, true)
  while i do at = i; i = string.find(m, '\\0', i + 1, true) end
  if not at then return base .. '1' .. sep .. skip .. m end
  local tail = string.sub(m, at + 1)
  local mark = string.sub(tail, 1, 1)
  if mark == '~' then return string.sub(tail, 2) end
  if mark == '#' then
    return (string.gsub(string.sub(tail, 2), '..', function(h)
      return string.char(tonumber(h, 16)) end))
  end
  return base .. tail .. sep .. skip .. string.sub(m, 1, at - 1)
end
"""

# Entries of one slot: SET each and add it to its root's and tags' shards, atomically.
# KEYS per entry: the entry, then its shards (root first). ARGV: px (0: none), '' / NX / XX,
# sweep fraction (-1: none), base, sep, the shards' life (0: none), then per entry: value,
# root member, tag member, "<root><sep>", number of root shards (0/1), number of tag
# shards, '1' to push its shards' expiry out (this process has not lately).
# A new shard gets the placeholder member "" (never drained, so a drained shard stays
# and a missing one means new, expired or flushed: its record may need writing again).
# Reply per entry: 0 not stored (NX / XX), 1 stored, 2 stored in a new shard.
WRITE = LuaScript(
    """
local px = tonumber(ARGV[1])
local mode = ARGV[2]
local sweep = tonumber(ARGV[3])
local spx = tonumber(ARGV[6])
local prune = nil
if sweep >= 0 then  -- only then are the helpers made (a write is the hot path)
"""
    + _FULL_OF
    + """
  local base, sep = ARGV[4], ARGV[5]
  local swept = {}
  prune = function(shard, skip)
    if swept[shard] then return end
    swept[shard] = true
    local start = math.floor(sweep * redis.call('ZCARD', shard))
    for _, m in ipairs(redis.call('ZRANGE', shard, start, start + """
    + str(SWEEP_SIZE - 1)
    + """)) do
      if m ~= '' and redis.call('EXISTS', full_of(m, base, sep, skip)) == 0 then
        redis.call('ZREM', shard, m)
      end
    end
  end
end
local out = {}
local k, a = 1, 7
while a <= #ARGV do
  local entry, value = KEYS[k], ARGV[a]
  local nroot, ntags = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local ok
  if px > 0 then
    if mode == '' then ok = redis.call('SET', entry, value, 'PX', px)
    else ok = redis.call('SET', entry, value, 'PX', px, mode) end
  elseif mode == '' then ok = redis.call('SET', entry, value)
  else ok = redis.call('SET', entry, value, mode) end
  local flag = 0
  if ok then
    flag = 1
    local push = ARGV[a + 6] == '1'
    for j = 1, nroot + ntags do
      local shard = KEYS[k + j]
      local m, skip = ARGV[a + 2], ''
      if j <= nroot then m, skip = ARGV[a + 1], ARGV[a + 3] end
      if redis.call('ZADD', shard, 0, '', 0, m) == 2 then  -- a new shard
        flag = 2
        if spx > 0 then redis.call('PEXPIRE', shard, spx) end
      elseif push then
        if spx > 0 then redis.call('PEXPIRE', shard, spx, 'GT')
        else redis.call('PERSIST', shard) end
      end
      if prune then prune(shard, skip) end
    end
  end
  out[#out + 1] = flag
  k = k + 1 + nroot + ntags
  a = a + 7
end
return out
"""
)

# Take at most ARGV[3] members of KEYS[1] in the lex range ARGV[1]..ARGV[2], delete their
# keys and the members (the first ones of the range: one contiguous run), in one step.
# ARGV: min, max, limit, base, sep, "<root><sep>" ("" for a tag), '1' to hand back the
# deleted keys. Reply: {members taken, keys deleted, keys...}.
DRAIN = LuaScript(
    _FULL_OF
    + """
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ms == 0 then return {0, 0} end
local fulls = {}
for i, m in ipairs(ms) do fulls[i] = full_of(m, ARGV[4], ARGV[5], ARGV[6]) end
local deleted = redis.call('DEL', unpack(fulls))
redis.call('ZREMRANGEBYLEX', KEYS[1], ARGV[1], '[' .. ms[#ms])
local out = {#ms, deleted}
if ARGV[7] == '1' then
  for _, f in ipairs(fulls) do out[#out + 1] = f end
end
return out
"""
)

# Set the bits of slots ARGV[2..] in the record KEYS[1] (a 2 KB bitmap at most) and make it
# live at least ARGV[1] ms (0: always).
RECORD = LuaScript(
    """
local t = redis.call('PTTL', KEYS[1])
for i = 2, #ARGV do redis.call('SETBIT', KEYS[1], ARGV[i], 1) end
local px = tonumber(ARGV[1])
if px == 0 then
  if t >= 0 then redis.call('PERSIST', KEYS[1]) end
elseif t == -2 or (t >= 0 and t < px) then
  redis.call('PEXPIRE', KEYS[1], px)
end
return 1
"""
)


# -- steps -------------------------------------------------------------------------------------

# An entry to write: (user key as text, full Redis key, encoded value, version).
Item = tuple[str, str, Any, int]


def write(
    cache: Backend, items: Sequence[Item], px: int | None, mode: str, tags: tuple[str, ...]
) -> Steps[list[bool]]:
    """Store ``items`` (``mode`` "", "NX" or "XX"), each with its index memberships in one
    atomic script; on a Cluster the slots' records first (when this process has not
    written them lately). Returns, per item, whether it was stored."""
    n = names(cache)
    track = cache.options.track_writes
    sep = n.sep
    if len(items) == 1 and n.single_slot:  # one entry, one server: the hot path
        key, full, value, version = items[0]
        root = n.root_of(key) if track else None
        keys: list[str] = [full]
        if root:
            keys.append(n.shard(ROOT_SHARD, root, None))
        keys += [n.shard(TAG_SHARD, tag, None) for tag in tags]
        push = extend(cache, keys[1:], px)
        args: list[Any] = [
            px or 0,
            mode,
            sweep_rank(),
            n.base,
            sep,
            shard_px(px),
            value,
            n.member(key, full, version, len(root) + len(sep)) if root else "",
            n.member(key, full, version, 0) if tags else "",
            f"{root}{sep}" if root else "",
            1 if root else 0,
            len(tags),
            push,
        ]
        flag = (yield Script(WRITE, keys, args))[0]
        if flag == 2 or (flag and push == "1"):
            extended(cache, keys[1:], px)
        return [bool(flag)]
    roots = [n.root_of(key) if track else None for key, _, _, _ in items]
    groups: dict[int | None, list[int]] = {}
    wanted: list[tuple[str, int]] = []
    for at, (_, full, _, _) in enumerate(items):
        slot = _slot(_bytes(full)) if n.sharded() else None
        groups.setdefault(slot, []).append(at)
        if slot is not None:
            root = roots[at]
            if root:
                wanted.append((n.record(ROOT_RECORD, root), slot))
            wanted += [(n.record(TAG_RECORD, tag), slot) for tag in tags]
    needed: list[tuple[str, int]] = []
    if wanted:
        needed = needed_records(cache, wanted, px)
        if needed:
            calls = record_calls(needed, px)
            yield Scripts(calls) if len(calls) > 1 else Script(*calls[0])
            remember_records(cache, needed, px)
    sweep = sweep_rank()
    calls = []
    order: list[int] = []
    shards_of: dict[int, list[str]] = {}
    pushes: dict[tuple[str, ...], str] = {}
    for slot, ats in groups.items():
        tag_shards = [n.shard(TAG_SHARD, tag, slot) for tag in tags]
        for start in range(0, len(ats), ENTRIES_PER_SCRIPT):
            chunk = ats[start : start + ENTRIES_PER_SCRIPT]
            keys = []
            args = [px or 0, mode, sweep, n.base, sep, shard_px(px)]
            for at in chunk:
                key, full, value, version = items[at]
                root = roots[at]
                keys.append(full)
                mine = list(tag_shards)
                if root:
                    mine.insert(0, n.shard(ROOT_SHARD, root, slot))
                    member = n.member(key, full, version, len(root) + len(sep))
                else:
                    member = ""
                keys += mine
                shards_of[at] = mine
                push = pushes.get(tuple(mine), "")
                if not push:
                    push = pushes[tuple(mine)] = extend(cache, mine, px)
                args += [
                    value,
                    member,
                    n.member(key, full, version, 0) if tags else "",
                    f"{root}{sep}" if root else "",
                    1 if root else 0,
                    len(tags),
                    push,
                ]
            calls.append((WRITE, keys, args))
            order += chunk
    if len(calls) == 1:
        replies = [(yield Script(*calls[0]))]
    else:
        replies = yield Scripts(calls)
    stored = [False] * len(items)
    flags = [flag for reply in replies for flag in reply]
    new: list[int] = []
    lived: dict[str, None] = {}
    for at, flag in zip(order, flags, strict=True):
        stored[at] = bool(flag)
        if flag == 2:
            new.append(at)
        if flag == 2 or (flag and pushes[tuple(shards_of[at])] == "1"):
            lived.update(dict.fromkeys(shards_of[at]))
    if lived:
        extended(cache, lived, px)
    if new and n.sharded():
        # A shard this process believed recorded was missing (flushed, say): its record
        # may be gone too, so it is written again before the write returns.
        done = set(needed)
        heal = []
        for at in new:
            slot = _slot(_bytes(items[at][1]))
            root = roots[at]
            pairs = [(n.record(TAG_RECORD, tag), slot) for tag in tags]
            if root:
                pairs.append((n.record(ROOT_RECORD, root), slot))
            heal += [pair for pair in pairs if pair not in done]
        if heal:
            calls = record_calls(dict.fromkeys(heal), px)
            yield Scripts(calls) if len(calls) > 1 else Script(*calls[0])
            remember_records(cache, heal, px)
    return stored


# A shard to drain: (shard key, lex min, lex max, "<root><sep>" or "").
Shard = tuple[str, str, str, str]


def shards(cache: Backend, targets: Sequence[tuple[str, str, str, str]]) -> Steps[list[Shard]]:
    """The shards of ``targets`` ``(shard kind, record kind, root or tag, rest)``: one
    each on a single server; on a Cluster one per slot its record lists."""
    n = names(cache)
    out: list[Shard] = []
    slots: list[list[int | None]] = [[None]] * len(targets)
    if n.sharded():
        records = [n.record(record, name) for _, record, name, _ in targets]
        replies = yield Pipe([("GET", record) for record in records])
        slots = [[*slots_of(reply or b"")] for reply in replies]
    for (kind, _, name, rest), used in zip(targets, slots, strict=True):
        low, high = lex_range(rest, n.sep)
        skip = f"{name}{n.sep}" if kind == ROOT_SHARD else ""
        out += [(n.shard(kind, name, slot), low, high, skip) for slot in used]
    return list(dict.fromkeys(out))


def drain(
    cache: Backend, targets: Sequence[Shard], keys_wanted: bool
) -> Steps[tuple[int, list[Any]]]:
    """Delete every entry the shards hold in their ranges; ``(keys deleted, the keys if
    wanted)``. A shard is drained again while it hands back full batches; a cut reply
    raises (through the executor) and leaves only whole batches done."""
    n = names(cache)
    want = "1" if keys_wanted else "0"
    deleted = 0
    gone: list[Any] = []
    pending = list(targets)
    per_pipe = FIRST_PIPE
    for _ in range(MAX_DRAINS):
        if not pending:
            return deleted, gone
        again: list[Shard] = []
        for start in range(0, len(pending), per_pipe):
            chunk = pending[start : start + per_pipe]
            calls = [
                (DRAIN, [shard], [low, high, DRAIN_BATCH, n.base, n.sep, skip, want])
                for shard, low, high, skip in chunk
            ]
            if len(calls) == 1:
                replies = [(yield Script(*calls[0]))]
            else:
                replies = yield Scripts(calls)
            for target, reply in zip(chunk, replies, strict=True):
                deleted += int(reply[1])
                gone += reply[2:]
                if int(reply[0]) >= DRAIN_BATCH:
                    again.append(target)
        pending = again
        per_pipe = FULL_PIPE
    raise Unavailable(
        IncompleteInvalidation(
            f"{len(pending)} index shard(s) still full after {MAX_DRAINS} batches: writers "
            "add entries as fast as they are deleted; run the invalidation again"
        )
    )


class IncompleteInvalidation(RuntimeError):
    """The cause of ``CacheUnavailable`` when a drain hit its cap (``MAX_DRAINS``)."""
