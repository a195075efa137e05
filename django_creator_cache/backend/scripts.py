"""Lua scripts the backend sends, with their SHA1s (EVALSHA first, EVAL if the server lacks one).

Shared by the sync and async methods so both run exactly the same script.
"""

from __future__ import annotations

import hashlib

# incr/decr: Django's contract (a missing key raises), atomic, one round trip; keeps the TTL.
INCR_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""
INCR_SHA = hashlib.sha1(INCR_SCRIPT.encode()).hexdigest()
