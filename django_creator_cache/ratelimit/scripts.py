"""The three rate-limiting algorithms, each one Lua script: count and answer atomically.

Every script reads the clock with Redis ``TIME``, so all web processes share one clock;
it touches one key only (``KEYS[1]``), so it runs on Redis Cluster too. Arguments:
``ARGV[1]`` limit, ``ARGV[2]`` period in milliseconds, ``ARGV[3]`` cost (0 asks without
counting). Reply: ``{allowed (0/1), remaining, reset_ms, retry_after_ms}`` where reset is
when the full limit is available again and retry_after when this request would pass.
Times are milliseconds; a key's time never goes backwards (a stepped-back server clock
is clamped to the last time the key saw). Sent as EVALSHA (``LuaScript``), sync or async.
"""

from __future__ import annotations

from ..backend.scripts import LuaScript

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = math.max(cost, 1)
"""

# Exact: a sorted set holding one member per counted hit, scored by its time. Members
# are "<ms>-<n>", unique because n grows at a given ms and time is monotonic per key.
SLIDING_WINDOW_LUA = (
    _NOW
    + """
local key = KEYS[1]
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
if newest and tonumber(newest) > now then now = tonumber(newest) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local count = redis.call('ZCARD', key)
local allowed = count + need <= limit
if allowed and cost > 0 then
  for i = 1, cost do
    redis.call('ZADD', key, now, string.format('%d-%d', now, count + i))
  end
  count = count + cost
  newest = now
  redis.call('PEXPIRE', key, period)
end
local reset = 0
if count > 0 then reset = tonumber(newest) + period - now end
local retry = 0
if not allowed then
  local index = count + need - limit - 1
  retry = tonumber(redis.call('ZRANGE', key, index, index, 'WITHSCORES')[2]) + period - now
end
return {allowed and 1 or 0, limit - count, reset, retry}
"""
)

# One hash {w = window start, n = hits in it}; windows start at offset ARGV[4] (a hash of
# the key) modulo the period, so the keys of a site do not all reset at the same instant.
FIXED_WINDOW_LUA = (
    _NOW
    + """
local key = KEYS[1]
local start = now - (now - tonumber(ARGV[4])) % period
local state = redis.call('HMGET', key, 'w', 'n')
local count = 0
if tonumber(state[1]) == start then count = tonumber(state[2]) end
local allowed = count + need <= limit
local reset = start + period - now
if allowed and cost > 0 then
  count = count + cost
  redis.call('HSET', key, 'w', start, 'n', count)
  redis.call('PEXPIRE', key, reset)
end
local retry = 0
if not allowed then retry = reset end
return {allowed and 1 or 0, limit - count, reset, retry}
"""
)

# A bucket of ``limit`` tokens refilled at limit/period: bursts up to the limit, then a
# steady pace. Held in units of 1/period token (u) with the time of the last hit (t),
# so refills are integer arithmetic: exact in Lua's doubles.
TOKEN_BUCKET_LUA = (
    _NOW
    + """
local key = KEYS[1]
local capacity = limit * period
local state = redis.call('HMGET', key, 'u', 't')
local units = capacity
local last = tonumber(state[2])
if last then
  if last > now then now = last end
  units = math.min(capacity, tonumber(state[1]) + (now - last) * limit)
end
local allowed = units >= need * period
if allowed and cost > 0 then
  units = units - cost * period
  redis.call('HSET', key, 'u', units, 't', now)
  redis.call('PEXPIRE', key, math.ceil((capacity - units) / limit))
end
local retry = 0
if not allowed then retry = math.ceil((need * period - units) / limit) end
return {allowed and 1 or 0, math.floor(units / period), math.ceil((capacity - units) / limit),
  retry}
"""
)


SCRIPTS = {
    "sliding_window": LuaScript(SLIDING_WINDOW_LUA),
    "fixed_window": LuaScript(FIXED_WINDOW_LUA),
    "token_bucket": LuaScript(TOKEN_BUCKET_LUA),
}
