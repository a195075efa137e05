"""Typed values as Redis hash fields: text we write and parse ourselves.

Why not the cache serializer: JSON and msgpack turn a ``Decimal`` into a float
(or refuse it) and drop a datetime's time zone. Money and timestamps in the
domain managers are therefore stored as exact text, the same whatever
``SERIALIZER`` the alias uses: ``Decimal`` as ``str``, a datetime as ISO 8601
plus its IANA zone name when it has one (``...+01:00[Europe/Paris]``), so it
comes back in the same zone, not just at the same offset.
"""

from __future__ import annotations

import datetime
import decimal
from zoneinfo import ZoneInfo


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def money(value: decimal.Decimal | int | str) -> str:
    """An exact amount as text; refuses floats (already inexact) and NaN/infinity."""
    if isinstance(value, float):
        raise TypeError(f"money must be a Decimal, int or str, not float ({value!r})")
    amount = decimal.Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"money must be finite, got {value!r}")
    return str(amount)


def parse_money(raw: bytes | str) -> decimal.Decimal:
    return decimal.Decimal(text(raw))


def moment(value: datetime.datetime) -> str:
    """A datetime as ISO 8601, with ``[Zone/Name]`` when its tzinfo is a ZoneInfo."""
    stamp = value.isoformat()
    if isinstance(value.tzinfo, ZoneInfo):
        return f"{stamp}[{value.tzinfo.key}]"
    return stamp


def parse_moment(raw: bytes | str) -> datetime.datetime:
    stamp, _, zone = text(raw).partition("[")
    value = datetime.datetime.fromisoformat(stamp)
    return value.astimezone(ZoneInfo(zone[:-1])) if zone else value


def number(value: float) -> str:
    """A float as the shortest text that reads back as the same float."""
    return repr(float(value))
