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


class LuaScript:
    """A Lua script's source and SHA1. ``read_only``: it writes nothing (safe to resend)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str, *, read_only: bool = False) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        if read_only:
            read_only_script(self.source, self.sha)

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
