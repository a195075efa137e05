"""TTL parsing, named TTL policies and jitter.

A TTL is seconds (int/float), a ``timedelta``, a string such as ``"90s"``,
``"15m"``, ``"1h30m"`` or ``"2d"``, or ``None`` for "never expire".
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

from . import conf

TTLLike = int | float | timedelta | str | None

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_ttl(value: TTLLike) -> float | None:
    """Return the TTL in seconds, or ``None`` for no expiry."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"TTL must be seconds, a timedelta or a string, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text)
        if not text or _PART.sub("", text):
            raise ValueError(f"cannot parse TTL {value!r}: use e.g. '90s', '15m', '1h30m', '2d'")
        return float(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
    raise TypeError(f"TTL must be seconds, a timedelta or a string, got {type(value).__name__}")


def policy(name: str) -> int:
    """Seconds of a named TTL policy (``CACHE_TTL_<NAME>`` setting or its default)."""
    setting = f"CACHE_TTL_{name.upper()}"
    if setting not in conf.DEFAULTS:
        known = ", ".join(sorted(conf.TTL_POLICY_DEFAULTS))
        raise KeyError(f"unknown TTL policy {name!r}; known: {known}")
    ttl: int = conf.read(setting)
    return ttl


def jittered(ttl: float | None, fraction: float = 0.1) -> float | None:
    """Spread expiries: ``ttl`` plus up to ``fraction`` of it, at random."""
    if ttl is None or ttl <= 0 or fraction <= 0:
        return ttl
    return ttl + random.uniform(0, ttl * fraction)
