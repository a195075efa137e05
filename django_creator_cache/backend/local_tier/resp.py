"""A minimal incremental RESP2 reader, for the tracking connections of the local tier.

Also the package's lowest layer: ``MISSING`` (no value / no complete reply yet) and
``_Lost`` (raised by the reader on a garbled stream) live here so every module can use them.
"""

from __future__ import annotations

from typing import Any

MISSING: Any = object()


class _Lost(Exception):
    """The tracking of a node is gone (connection, role, slot map)."""


class _Error(bytes):
    """An error reply."""


class _RespReader:
    """Incremental RESP2 parser: ``feed`` bytes, ``gets`` complete replies or MISSING.

    Our own (not redis-py's) so a partial message never blocks a reader holding
    the tier's lock, with or without hiredis.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def gets(self) -> Any:
        try:
            value, end = self._parse(self._pos)
        except IndexError:
            return MISSING
        self._pos = end
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.index(b"\r\n", pos)  # ValueError if incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        if pos >= len(self._buf):
            raise IndexError
        try:
            line, nxt = self._line(pos + 1)
        except ValueError:
            raise IndexError from None
        kind = self._buf[pos]
        if kind == 0x2B:  # +
            return line, nxt
        if kind == 0x2D:  # -
            return _Error(line), nxt
        if kind == 0x3A:  # :
            return int(line), nxt
        if kind == 0x24:  # $
            size = int(line)
            if size < 0:
                return None, nxt
            if nxt + size + 2 > len(self._buf):
                raise IndexError
            return bytes(self._buf[nxt : nxt + size]), nxt + size + 2
        if kind == 0x2A:  # *
            count = int(line)
            if count < 0:
                return None, nxt
            items = []
            for _ in range(count):
                item, nxt = self._parse(nxt)
                items.append(item)
            return items, nxt
        raise _Lost(f"unexpected RESP byte {kind!r}")
