"""Durations written with or without units, for TTLs and timeouts alike.

A duration is seconds (an int or a float, or the same as a string: ``"2.5"``), a
``timedelta``, or a string with units: ``"500ms"``, ``"2s"``, ``"15m"``, ``"1h30m"``,
``"2d"``, ``"1w"``. Whether the unit was written matters to the settings: a bare ``5000``
meant as milliseconds by another cache layer reads as 83 minutes here, so ``conf`` refuses a
bare number that is implausible in seconds (see ``conf.DURATION_LIMITS``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, NamedTuple

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhdw])")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
EXAMPLES = "seconds (2, 0.5), '500ms', '2s', '1m30s' or a timedelta"


class Duration(NamedTuple):
    seconds: float
    # The value said its unit (a string with units, or a timedelta); False for a bare number.
    explicit: bool


def parse(value: Any) -> Duration:
    """``value`` in seconds; ``ValueError`` / ``TypeError`` for anything else."""
    if isinstance(value, bool):
        raise TypeError(f"a duration must be {EXAMPLES}, got {value!r}")
    if isinstance(value, int | float):
        return Duration(float(value), False)
    if isinstance(value, timedelta):
        return Duration(value.total_seconds(), True)
    if isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            return Duration(float(text), False)
        if not text or _PART.sub("", text):
            raise ValueError(f"cannot parse duration {value!r}: use {EXAMPLES}")
        return Duration(sum(float(n) * UNITS[u] for n, u in _PART.findall(text)), True)
    raise TypeError(f"a duration must be {EXAMPLES}, got {type(value).__name__}")
