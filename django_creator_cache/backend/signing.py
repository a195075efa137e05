"""Signed values: refuse what this site did not write, before unpickling it.

With ``OPTIONS["SIGNED"] = True`` (keys derived from ``SECRET_KEY`` and
``SECRET_KEY_FALLBACKS``) or ``OPTIONS["SIGNING_KEY"]`` (a key, or a list of keys:
the first signs, every one verifies, so keys rotate without a cold cache), every
value the codec writes is::

    b"\\xffS1" + HMAC-SHA256(key, encoded bytes)[:16] + encoded bytes

and a value read back that lacks the marker or whose tag matches no listed key is
a miss (counted as corrupt, logged without any key or tag, deleted): its bytes
never reach the serializer, so a pickle planted in Redis never runs.

The tag is cut to 128 bits, as HMAC-SHA256-128 (RFC 4868) is: forging one still
takes about 2**128 online tries, and it keeps the overhead at 19 bytes a value.
The HMAC keys are derived from the configured secrets (an HMAC of a fixed label),
so the ``SECRET_KEY`` itself is never used as a key for anything but its own
purposes. Plain integers stay plain Redis integers (``INCRBY`` must work on them):
they are not signed, and ``int()`` is all that ever reads them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..exceptions import CorruptValue

MAGIC = b"\xffS1"  # starts no pickle, JSON, msgpack map, integer or compressed frame
TAG_SIZE = 16
_BLOCK = 64  # SHA-256's block size, in bytes
_MAGIC_SIZE = len(MAGIC)
_HEAD = _MAGIC_SIZE + TAG_SIZE
_same = hmac.compare_digest
_LABEL = b"django_creator_cache.backend.signing: signed values"
MIN_KEY_LENGTH = 32


def derive(secret: str | bytes) -> bytes:
    """The HMAC key for ``secret``: never the secret itself."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.digest(raw, _LABEL, "sha256")


class _Key:
    """HMAC-SHA256 (RFC 2104) with the padded key hashed once: each tag then costs two
    hash copies, where ``hmac.digest`` sets OpenSSL up anew on every call (3x slower)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def tag(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_SIZE]


class Signer:
    """Signs encoded values with the first key; verifies with any of them."""

    __slots__ = ("_keys", "_sign_key")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("Signer needs at least one key")
        self._keys = tuple(_Key(key) for key in keys)
        self._sign_key = self._keys[0]

    def sign(self, data: bytes) -> bytes:
        return b"".join((MAGIC, self._sign_key.tag(data), data))

    def unsign(self, raw: bytes) -> bytes:
        """The encoded bytes inside ``raw``; raises ``CorruptValue`` unless a key signed them."""
        if raw[:_MAGIC_SIZE] != MAGIC or len(raw) < _HEAD:
            raise CorruptValue("unsigned value refused (this cache only reads signed values)")
        tag = raw[_MAGIC_SIZE:_HEAD]
        data = raw[_HEAD:]
        for key in self._keys:
            if _same(key.tag(data), tag):
                return data
        raise CorruptValue(
            "signature does not verify (value altered, or signed with a key no longer listed)"
        )


def keys_from_options(options: dict[str, Any]) -> tuple[bytes, ...]:
    """The derived signing keys ``OPTIONS`` asks for, first one signing; () = unsigned.

    ``SIGNING_KEY``: a string (or bytes) of at least 32 characters, or a non-empty list
    of them. ``SIGNED``: a bool; True without ``SIGNING_KEY`` uses ``SECRET_KEY`` then
    ``SECRET_KEY_FALLBACKS``. Raises ``ImproperlyConfigured`` naming the option.
    """
    signed = options.get("SIGNED")
    given = options.get("SIGNING_KEY")
    if signed is not None and not isinstance(signed, bool):
        raise ImproperlyConfigured(f"CACHES OPTIONS SIGNED must be True or False, got {signed!r}")
    if given is None:
        if not signed:
            return ()
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
        if not secrets[0]:
            raise ImproperlyConfigured("CACHES OPTIONS SIGNED needs a SECRET_KEY")
        return tuple(derive(secret) for secret in secrets if secret)
    if signed is False:
        raise ImproperlyConfigured(
            "CACHES OPTIONS SIGNING_KEY is set but SIGNED is False: remove one of them"
        )
    listed = [given] if isinstance(given, str | bytes) else given
    if not isinstance(listed, list | tuple) or not listed:
        raise ImproperlyConfigured(
            "CACHES OPTIONS SIGNING_KEY must be a key or a non-empty list of keys "
            "(the first signs, all verify)"
        )
    for position, key in enumerate(listed):
        if not isinstance(key, str | bytes) or len(key) < MIN_KEY_LENGTH:
            raise ImproperlyConfigured(
                f"CACHES OPTIONS SIGNING_KEY key #{position + 1} must be a string of at least "
                f"{MIN_KEY_LENGTH} characters (e.g. secrets.token_urlsafe(32)), got "
                + (f"one of {len(key)}" if isinstance(key, str | bytes) else type(key).__name__)
            )
    return tuple(derive(key) for key in listed)
