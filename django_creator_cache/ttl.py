"""TTL parsing, named TTL policies and jitter.

A TTL is seconds (int/float), a ``timedelta``, a string such as ``"90s"``,
``"15m"``, ``"1h30m"`` or ``"2d"`` (``durations``), or ``None`` for "never expire".
"""

from __future__ import annotations

import random
from datetime import timedelta

from . import conf, durations

TTLLike = int | float | timedelta | str | None


def parse_ttl(value: TTLLike) -> float | None:
    """Return the TTL in seconds, or ``None`` for no expiry."""
    if value is None:
        return None
    try:
        return durations.parse(value).seconds
    except ValueError:
        raise ValueError(
            f"cannot parse TTL {value!r}: use e.g. '90s', '15m', '1h30m', '2d'"
        ) from None


def policy(name: str) -> int:
    """Seconds of TTL policy ``name``: the ``CACHE_TTL_<NAME>`` setting (any name, so each
    data type can have its own) or the built-in default of the six named in the README."""
    return conf.ttl_policy(name)


def check_policy(name: str, who: str) -> None:
    """``ValueError`` naming ``who`` unless ``name`` is a built-in policy or has its
    ``CACHE_TTL_<NAME>`` setting (checked when declared; its value is read when used)."""
    try:
        conf.ttl_policy(name)
    except KeyError as exc:
        raise ValueError(f"{who}: unknown TTL policy {name!r} ({exc.args[0]})") from None


def jittered(ttl: float | None, fraction: float = 0.1) -> float | None:
    """Spread expiries: ``ttl`` plus up to ``fraction`` of it, at random."""
    if ttl is None or ttl <= 0 or fraction <= 0:
        return ttl
    return ttl + random.uniform(0, ttl * fraction)
