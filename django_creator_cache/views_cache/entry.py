"""A stored page as one blob of bytes, whatever the cache's serializer.

A page is status, reason, headers, body (binary), when it was stored and for
how long. Encoded here into one ``bytes`` blob (a fixed header packed with
``struct``, the reason and headers as compact JSON, then the body), so the
cache's serializer only ever sees one ``bytes`` value: pickle and msgpack store
it as it is. A serializer that cannot hold bytes (JSON, or a custom one we do
not know) gets the blob as an ASCII ``str`` (base64 behind a marker): a third
larger, but it round-trips. Anything else read back (a foreign value, a page
of an older layout, a truncated blob) is not a page: a miss.

``Set-Cookie`` never enters a blob and never comes out of one, whatever was
planted in the cache.
"""

from __future__ import annotations

import binascii
import json
import math
import struct
import time
from typing import Any, NamedTuple

from django.core.cache.backends.base import BaseCache
from django.http import HttpResponse

from ..backend.codec import SERIALIZERS, resolve_path

MAGIC = b"DCCP\x02"  # a page blob starts so; the last byte is the layout version
TEXT_MARK = "dcc-page:2:"  # a page stored as text: this, then the blob in base64
# status, stored at (epoch seconds), ttl (seconds, -1 = never expires), length of the head
_FIXED = struct.Struct(">Hddi")
_START = len(MAGIC) + _FIXED.size
# Serializers known to store ``bytes`` values as bytes.
_BYTES_SERIALIZERS = frozenset({SERIALIZERS["pickle"], SERIALIZERS["msgpack"]})


def stores_bytes(cache: BaseCache) -> bool:
    """Whether ``cache`` keeps a ``bytes`` value as bytes: pickle and msgpack, and
    Django's own backends (they pickle). Any other serializer gets text."""
    name = getattr(getattr(cache, "options", None), "serializer", None)
    if not isinstance(name, str):
        return True
    return resolve_path(name, SERIALIZERS) in _BYTES_SERIALIZERS


def encode(
    response: HttpResponse, ttl: float | None, *, text: bool, stored_at: float | None = None
) -> bytes | str:
    """The stored form of ``response`` (``text``: an ASCII ``str`` instead of bytes)."""
    headers = [[k, v] for k, v in response.items() if k.lower() != "set-cookie"]
    head = json.dumps([response.reason_phrase, headers], separators=(",", ":")).encode()
    fixed = _FIXED.pack(
        response.status_code,
        time.time() if stored_at is None else stored_at,
        -1.0 if ttl is None else ttl,
        len(head),
    )
    blob = b"".join((MAGIC, fixed, head, response.content))
    if text:
        return TEXT_MARK + binascii.b2a_base64(blob, newline=False).decode("ascii")
    return blob


class Page(NamedTuple):
    """A stored page as read: shared by the hits on one stored value, never handed out
    (each hit gets a response of its own, see ``response``)."""

    status: int
    reason: str | None
    headers: dict[str, str]  # without Set-Cookie
    body: bytes
    expires: float | None  # epoch seconds; None: never expires
    controlled: bool  # it has a Cache-Control header
    life: float | None = None  # seconds it was stored for; None: never expires

    def remaining(self) -> float | None:
        """Seconds left of the page's life (None: never expires); never more than it was
        stored for, whatever the writer's clock said."""
        if self.expires is None:
            return None
        left = self.expires - time.time()
        return left if self.life is None else min(left, self.life)

    def response(self, headers: dict[str, str] | None = None) -> HttpResponse:
        """A new response for this page (``headers`` instead of the stored ones); raises
        ``ValueError`` or ``TypeError`` for a status or header Django refuses."""
        return HttpResponse(
            self.body,
            status=self.status,
            reason=self.reason,
            headers=self.headers if headers is None else headers,
        )


def read(value: Any) -> Page | None:
    """The page stored as ``value``, or None if ``value`` is not a page."""
    if type(value) is str:
        if not value.startswith(TEXT_MARK):
            return None
        try:
            value = binascii.a2b_base64(value[len(TEXT_MARK) :], strict_mode=True)
        except (binascii.Error, ValueError):
            return None
    if type(value) is not bytes or not value.startswith(MAGIC) or len(value) < _START:
        return None
    status, stored_at, ttl, head_length = _FIXED.unpack_from(value, len(MAGIC))
    if not (math.isfinite(stored_at) and math.isfinite(ttl)):
        return None
    end = _START + head_length
    head = _head(value[_START:end])
    if head is None:
        return None
    reason, headers, controlled = head
    life = None if ttl < 0 else ttl
    expires = None if life is None else stored_at + life
    return Page(status, reason, headers, value[end:], expires, controlled, life)


# The page last read for a key, with the value it was read from: the local tier hands out
# the same (immutable) value object on every hit, so such a hit reads nothing. Checked by
# identity; bounded, emptied when full.
_PAGES: dict[str, tuple[Any, Page]] = {}
_MAX_PAGES = 256


def read_held(key: str, value: Any) -> Page | None:
    """``read(value)``, read once per value object stored under ``key``."""
    found = _PAGES.get(key)
    if found is not None and found[0] is value:
        return found[1]
    page = read(value)
    if page is not None:
        if len(_PAGES) >= _MAX_PAGES:
            _PAGES.clear()
        _PAGES[key] = (value, page)
    return page


# Heads already read (reason, headers without Set-Cookie): a hit parses no JSON. Pages of
# one site share a few heads; bounded, emptied when full.
_HEADS: dict[bytes, tuple[str | None, dict[str, str], bool]] = {}
_MAX_HEADS = 512


def _head(raw: bytes) -> tuple[str | None, dict[str, str], bool] | None:
    """The reason, headers (Set-Cookie dropped) and whether Cache-Control is among them,
    of a stored head, or None if unreadable."""
    found = _HEADS.get(raw)
    if found is not None:
        return found
    try:
        reason, headers = json.loads(raw)
        pairs = {str(k): str(v) for k, v in headers if str(k).lower() != "set-cookie"}
    except (ValueError, TypeError):  # JSON, unpacking
        return None
    if reason is not None and not isinstance(reason, str):
        return None
    if len(_HEADS) >= _MAX_HEADS:
        _HEADS.clear()
    controlled = any(name.lower() == "cache-control" for name in pairs)
    _HEADS[raw] = found = (reason, pairs, controlled)
    return found
