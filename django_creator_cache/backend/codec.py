"""Value encoding: serializer plus optional compressor, django-redis compatible.

Integers are stored as plain Redis integers (so ``INCRBY`` works on them);
everything else is serialised and, above a size threshold, compressed. The
byte layout is django-redis's, so a site can switch backends without losing
what is already cached. With signing on (``signing``), every encoded value also
carries an HMAC, checked before the bytes reach the decompressor or serializer.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from django.utils.module_loading import import_string
from django_redis.compressors.base import BaseCompressor
from django_redis.exceptions import CompressorError
from django_redis.serializers.base import BaseSerializer
from django_redis.serializers.pickle import PickleSerializer

from ..exceptions import CorruptValue, PickleSerializationError, SerializationError
from .signing import Signer

SERIALIZERS = {
    "pickle": "django_redis.serializers.pickle.PickleSerializer",
    "json": "django_redis.serializers.json.JSONSerializer",
    "msgpack": "django_redis.serializers.msgpack.MSGPackSerializer",
}
COMPRESSORS = {
    "zlib": "django_redis.compressors.zlib.ZlibCompressor",
    "gzip": "django_redis.compressors.gzip.GzipCompressor",
    "lzma": "django_redis.compressors.lzma.LzmaCompressor",
    "lz4": "django_redis.compressors.lz4.Lz4Compressor",
    "zstd": "django_redis.compressors.zstd.ZStdCompressor",
}
DEFAULT_COMPRESS_MIN_LENGTH = 1024

# First bytes a plain integer can start with; anything else skips int().
_INT_START = frozenset(b"-0123456789")


def resolve_path(name: str, aliases: dict[str, str]) -> str:
    """A short name (``"json"``) or a dotted path, as a dotted path."""
    return aliases.get(name.lower(), name)


def load_serializer(name: str, options: dict[str, Any]) -> BaseSerializer:
    serializer: BaseSerializer = import_string(resolve_path(name, SERIALIZERS))(options=options)
    return serializer


def load_compressor(name: str, min_length: int, options: dict[str, Any]) -> BaseCompressor:
    compressor: BaseCompressor = import_string(resolve_path(name, COMPRESSORS))(options=options)
    # django-redis compressors read their threshold from a class attribute.
    compressor.min_length = min_length
    return compressor


class Codec:
    """Turns Python values into Redis bytes and back, for one cache alias."""

    __slots__ = ("_compressor", "_dumps", "_loads", "_signer", "serializer_name")

    def __init__(
        self,
        serializer: BaseSerializer,
        compressor: BaseCompressor | None,
        signing_keys: Sequence[bytes] = (),
    ) -> None:
        self._dumps = serializer.dumps
        # Skip a Python frame per value for the default serializer.
        self._loads = pickle.loads if type(serializer) is PickleSerializer else serializer.loads
        self._compressor = compressor
        # None: unsigned, byte for byte what django-redis writes and reads.
        self._signer = Signer(signing_keys) if signing_keys else None
        self.serializer_name = type(serializer).__name__

    @property
    def signed(self) -> bool:
        return self._signer is not None

    def encode(self, value: Any, key: str = "") -> bytes | int:
        """Encode ``value`` for ``key``; raises ``SerializationError`` if it can't be."""
        if type(value) is int:
            return value
        return self.encode_serialized(value, key)

    def encode_serialized(self, value: Any, key: str = "") -> bytes:
        """Encode without the integer shortcut (sorted-set members, hash fields)."""
        try:
            data = self._dumps(value)
        except Exception as exc:  # each serializer raises its own types
            error = (
                PickleSerializationError
                if isinstance(exc, pickle.PickleError)
                else SerializationError
            )
            raise error(
                f"cannot store {type(value).__name__} under key {key!r} with "
                f"{self.serializer_name}: {exc}"
            ) from exc
        if self._compressor is not None:
            data = self._compressor.compress(data)
        if self._signer is not None:
            return self._signer.sign(bytes(data))
        return bytes(data)

    def decode(self, raw: bytes) -> Any:
        """Decode bytes read from Redis; raises ``CorruptValue`` on foreign data (and,
        signed, on anything no listed key signed: those bytes are never deserialized)."""
        if raw and raw[0] in _INT_START:
            with suppress(ValueError):
                return int(raw)
        if self._signer is not None:
            raw = self._signer.unsign(raw)
        try:
            if self._compressor is not None:
                with suppress(CompressorError):
                    raw = self._compressor.decompress(raw)
            return self._loads(raw)
        except Exception as exc:  # any serializer error means the bytes are not ours
            raise self._unreadable(raw, exc) from exc

    def decode_many(
        self, keys: Sequence[Any], raws: Sequence[bytes | None]
    ) -> tuple[dict[Any, Any], list[tuple[int, CorruptValue]]]:
        """``decode`` each value of an MGET reply: the values found by their ``keys``, and
        the unreadable ones by position. Without signing or a compressor (the default)
        one loop and no call per value."""
        found: dict[Any, Any] = {}
        errors: list[tuple[int, CorruptValue]] = []
        plain = self._signer is None and self._compressor is None
        loads = self._loads
        for i, raw in enumerate(raws):
            if raw is None:
                continue
            try:
                if not plain or not raw or raw[0] in _INT_START:
                    found[keys[i]] = self.decode(raw)
                    continue
                try:
                    found[keys[i]] = loads(raw)
                except Exception as exc:
                    raise self._unreadable(raw, exc) from exc
            except CorruptValue as exc:
                errors.append((i, exc))
        return found, errors

    def _unreadable(self, raw: bytes, exc: Exception) -> CorruptValue:
        return CorruptValue(f"{len(raw)} bytes not readable with {self.serializer_name}: {exc!r}")
