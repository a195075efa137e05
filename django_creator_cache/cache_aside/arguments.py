"""Stable cache keys for function arguments: a hash of a canonical text form.

Why not ``repr``/``hash``: ``hash`` of a str changes between processes, ``repr``
of a set or of an arbitrary object changes between runs, and equal dicts can
differ in order. The canonical form sorts what has no order, spells out each
value's type, and refuses types it cannot make stable (pass ``key=`` then)
rather than produce keys that never hit.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import Model


def digest(arguments: Iterable[tuple[str, Any]]) -> str:
    """A 32-hex-digit hash of ``(name, value)`` pairs, the same in every process."""
    text = ",".join(f"{name}={canonical(value)}" for name, value in arguments)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def canonical(value: Any) -> str:
    """A text form of ``value`` equal for equal values of the supported types."""
    if value is None:
        return "N"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, enum.Enum):
        cls = type(value)
        return f"e{cls.__module__}.{cls.__qualname__}({canonical(value.value)})"
    if isinstance(value, int):
        return f"i{int(value)}"
    if isinstance(value, float):
        return f"f{float(value)!r}"
    if isinstance(value, str):
        return f"s{str(value)!r}"
    if isinstance(value, bytes | bytearray):
        return f"b{bytes(value).hex()}"
    if isinstance(value, decimal.Decimal):
        return f"d{value}"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return f"t{type(value).__name__}{value.isoformat()}"
    if isinstance(value, datetime.timedelta):
        return f"td{value.total_seconds()!r}"
    if isinstance(value, uuid.UUID):
        return f"u{value.hex}"
    if isinstance(value, Model):
        return f"m{value._meta.label_lower}({canonical(value.pk)})"
    if isinstance(value, list | tuple):
        items = ",".join(map(canonical, value))
        return f"[{items}]" if isinstance(value, list) else f"({items})"
    if isinstance(value, dict):
        pairs = sorted(f"{canonical(k)}:{canonical(v)}" for k, v in value.items())
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, set | frozenset):
        return "<" + ",".join(sorted(map(canonical, value))) + ">"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        kind = type(value)
        return f"c{kind.__module__}.{kind.__qualname__}" + canonical(dict(fields))
    raise TypeError(
        f"cannot build a stable cache key from a {type(value).__name__} argument; "
        "pass key=<function> to @cached, or pass a value of a supported type "
        "(str, numbers, Decimal, dates, UUID, enums, models, dataclasses, containers of these)"
    )
