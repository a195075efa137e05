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
import struct
import time
from typing import Any

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


def decode(value: Any) -> tuple[HttpResponse, float | None] | None:
    """The page stored as ``value`` and its remaining seconds (None: never expires),
    or None if ``value`` is not a page."""
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
    end = _START + head_length
    head = _head(value[_START:end])
    if head is None:
        return None
    try:
        response = HttpResponse(value[end:], status=status, reason=head[0], headers=head[1])
    except (ValueError, TypeError):  # a status Django refuses
        return None
    return response, None if ttl < 0 else stored_at + ttl - time.time()


# Heads already read (reason, headers without Set-Cookie): a hit parses no JSON. Pages of
# one site share a few heads; bounded, emptied when full.
_HEADS: dict[bytes, tuple[str | None, dict[str, str]]] = {}
_MAX_HEADS = 512


def _head(raw: bytes) -> tuple[str | None, dict[str, str]] | None:
    """The reason and headers of a stored head (Set-Cookie dropped), or None if unreadable."""
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
    _HEADS[raw] = found = (reason, pairs)
    return found
