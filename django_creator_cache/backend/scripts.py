"""Lua scripts: one class for every script of the package, run by ``execution.Script``.

A script is sent as EVALSHA (its SHA1 computed once); a server that lacks it
(first use, restart, SCRIPT FLUSH) gets the source once. Scripts that only read
are declared to ``resend`` so a lost reply may be retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from .resend import read_only_script

# Every script made in this process, by SHA1.
_KNOWN: dict[str, LuaScript] = {}


class LuaScript:
    """A Lua script's source and SHA1. ``read_only``: it writes nothing (safe to resend)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str, *, read_only: bool = False) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        if read_only:
            read_only_script(self.source, self.sha)
        _KNOWN[self.sha] = self

    @classmethod
    def by_sha(cls, sha: str) -> LuaScript:
        """The script of this SHA1 (every ``LuaScript`` made in this process)."""
        return _KNOWN[sha]

    def command(self, keys: Sequence[Any], args: Sequence[Any] = ()) -> tuple[Any, ...]:
        """Its ``EVALSHA`` command: a one-request operation may send it as it is."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def __call__(self, client: Any, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any:
        """Run on a sync client (redis-py routes by the first key on a Cluster)."""
        try:
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this server, or its scripts were flushed
            return client.execute_command("EVAL", self.source, len(keys), *keys, *args)

    async def acall(self, client: Any, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any:
        """Run on a redis.asyncio client."""
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.execute_command("EVAL", self.source, len(keys), *keys, *args)


# incr/decr: Django's contract (a missing key raises), atomic, one round trip; keeps the TTL.
INCR = LuaScript(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""
)

# A counter past 64 bits, added to in Python: written (1) only while it still holds what
# was read, else left alone (0) for the caller to read again; keeps the TTL.
REPLACE_IF = LuaScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""
)

# One key's value and remaining life (the local tier keeps it that long at most).
FETCH_ONE = LuaScript(
    "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}", read_only=True
)

# Many keys (one slot, or a single server): values then PTTLs; a non-string key reads
# as a miss, like MGET.
FETCH_MANY = LuaScript(
    """
local n = #KEYS
local out = {}
for i = 1, n do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' and v.err then v = false end
  out[i] = v
  out[n + i] = redis.call('PTTL', KEYS[i])
end
return out
""",
    read_only=True,
)

# Takes every live member of an index and its persistent twin, and deletes both.
TAKE_INDEX = LuaScript(
    """
local live = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE')
local kept = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
for _, key in ipairs(kept) do live[#live + 1] = key end
return live
"""
)

# -- invalidation indexes (``indexes``) ------------------------------------------------

# Members one sweeping write checks in an index it added a member to.
SWEEP_SIZE = 32

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

# The sweep, the one rule that keeps an index from growing without bound: a write that
# adds a member to a shard (ZADD answered 1) checks, when its ``rank`` (a fraction drawn
# by the client in one write in ``SWEEP_EVERY``) says so, ``SWEEP_SIZE`` members from
# there and removes those whose key is gone. Only new members can later die unseen, so
# each pays for two checks on average, and dead members stay at most as many as live
# ones; rewriting keys that are already members (a steady keyspace) sweeps nothing.
# Defined only inside the branch that sweeps: a write is the hot path.
_PRUNE = (
    _FULL_OF
    + """
local function prune(shard, rank, base, sep, skip)
  local start = math.floor(rank * redis.call('ZCARD', shard))
  local ms, fulls = {}, {}
  for _, m in ipairs(redis.call('ZRANGE', shard, start, start + """
    + str(SWEEP_SIZE - 1)
    + """)) do
    if m ~= '' then
      ms[#ms + 1] = m
      fulls[#fulls + 1] = full_of(m, base, sep, skip)
    end
  end
  -- Mostly all alive: one EXISTS says so; else each is looked at.
  if #fulls == 0 or redis.call('EXISTS', unpack(fulls)) == #fulls then return end
  for i, full in ipairs(fulls) do
    if redis.call('EXISTS', full) == 0 then redis.call('ZREM', shard, ms[i]) end
  end
end
"""
)

# One entry in one shard: ``WRITE``'s common case with its work alone (a script's run
# time is mostly reading its arguments, a command's packing is per argument; numbers
# handed to redis.call are formatted back into strings, so none is).
# KEYS: the entry, its shard. ARGV: value, member, the shard's life in ms (a leading "-":
# also push its expiry out, this process has not lately), the entry's px ("0": none),
# "" / NX / XX, then to sweep (see _PRUNE): rank, base, sep, "<root><sep>".
# Reply: 0 not stored, 1 stored, 2 stored in a new shard.
WRITE_ONE = LuaScript(
    """
local px, mode, ok = ARGV[4], ARGV[5], nil
if px == '0' then
  if mode == '' then ok = redis.call('SET', KEYS[1], ARGV[1])
  else ok = redis.call('SET', KEYS[1], ARGV[1], mode) end
elseif mode == '' then ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
else ok = redis.call('SET', KEYS[1], ARGV[1], 'PX', px, mode) end
if not ok then return 0 end
local life, push = ARGV[3], string.byte(ARGV[3]) == 45
if push then life = string.sub(life, 2) end
local added = redis.call('ZADD', KEYS[2], 0, '', 0, ARGV[2])
if added == 2 then
  redis.call('PEXPIRE', KEYS[2], life)
  return 2
end
if push then redis.call('PEXPIRE', KEYS[2], life, 'GT') end
if added == 1 and ARGV[6] then
"""
    + _PRUNE
    + """
  prune(KEYS[2], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9])
end
return 1
"""
)

# Entries of one slot: SET each and add it to its root's and tags' shards, atomically.
# KEYS per entry: the entry, then its shards (root first). ARGV: px (0: none), '' / NX / XX,
# sweep rank (-1: none), base, sep, the shards' life, then per entry: value,
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
local prune_once = nil
if sweep >= 0 then
"""
    + _PRUNE
    + """
  local base, sep = ARGV[4], ARGV[5]
  local swept = {}
  prune_once = function(shard, skip)
    if swept[shard] then return end
    swept[shard] = true
    prune(shard, sweep, base, sep, skip)
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
      local added = redis.call('ZADD', shard, 0, '', 0, m)
      if added == 2 then  -- a new shard
        flag = 2
        redis.call('PEXPIRE', shard, spx)
      elseif push then
        redis.call('PEXPIRE', shard, spx, 'GT')
      end
      if added == 1 and prune_once then prune_once(shard, skip) end
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
