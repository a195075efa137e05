"""Rates such as ``"100/h"`` or ``"10/5m"``: how many hits per how long.

The unit is ``s``, ``m``, ``h`` or ``d``, optionally preceded by a count of units
(``"10/5m"`` is ten hits per five minutes). Django REST framework's spellings are read too
(``"100/hour"``, ``"5/min"``, ``"1000/day"``, ``"1/sec"``), so its ``DEFAULT_THROTTLE_RATES``
work as they are; other words are refused rather than guessed from their first letter
(``"10/month"`` is not ten a minute). Parsed once per rate, not per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(
    r"(\d+)/(\d*)(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)", re.ASCII
)
# The token bucket keeps ``limit * period_ms`` as an exact integer in a Lua double.
_MAX_UNITS = 2**53


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` hits per ``period`` seconds."""

    limit: int
    period: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period < 1:
            raise ValueError(f"a rate needs a limit and a period of at least 1, got {self}")
        if self.limit * self.period_ms >= _MAX_UNITS:
            raise ValueError(f"rate {self} is too large to count exactly")

    @property
    def period_ms(self) -> int:
        return self.period * 1000

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


@lru_cache(maxsize=256)
def parse_rate(text: str) -> Rate:
    """``"100/h"`` or ``"100/hour"`` -> ``Rate(100, 3600)``; ``"10/5m"`` -> ``Rate(10, 300)``."""
    match = _RATE.fullmatch(text.replace(" ", "").lower())
    if match is None:
        raise ValueError(
            f"cannot parse rate {text!r}: use '<hits>/<unit>' or '<hits>/<n><unit>' "
            "with unit s, m, h or d (or second, minute, hour, day), e.g. '100/h' or '10/5m'"
        )
    count, multiple, unit = match.groups()
    return Rate(int(count), int(multiple or 1) * _UNITS[unit[0]])


def as_rate(rate: Rate | str) -> Rate:
    """A ``Rate`` from a ``Rate`` or its text form."""
    if isinstance(rate, Rate):
        return rate
    if isinstance(rate, str):
        return parse_rate(rate)
    raise TypeError(f"rate must be a str such as '100/h' or a Rate, got {type(rate).__name__}")
