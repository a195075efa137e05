"""A server that answers with replies of the wrong kind never raises into a view.

Something that speaks the protocol but not sense (a broken proxy, a wrong server behind
the address): every data command gets one fixed reply, well-formed but of the wrong kind
(a number for a value, a status for a count, a list for a TTL). Reads miss, writes and
listings report nothing, counters raise ``CacheUnavailable`` (never a guessed number),
strict mode raises ``CacheUnavailable``; never a ``TypeError`` from inside the package.
No real Redis can answer so: the server here is a loopback socket that does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.exceptions import CacheUnavailable

BACKEND = "django_creator_cache.backend.RedisCache"
# RESP3 HELLO map, as Redis 7 answers it.
HELLO = (
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n"
    b"$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
    b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
)
REPLIES = {
    "integer": b":42\r\n",
    "status": b"+OK\r\n",
    "array": b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    "bulk": b"$5\r\nhello\r\n",
}


def _commands(data: bytes) -> list[bytes]:
    """The names of the commands in ``data`` (whole RESP arrays of bulk strings)."""
    names, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", at)
            size, at = int(data[at + 1 : end]), end + 2
            if index == 0:
                names.append(data[at : at + size].upper())
            at += size + 2
    return names


class NonsenseServer:
    """Answers the handshake as Redis does, then every command with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                out = b""
                for name in _commands(data):
                    if name == b"HELLO":
                        out += HELLO
                    elif name in (b"CLIENT", b"SELECT", b"PING"):
                        out += b"+PONG\r\n" if name == b"PING" else b"+OK\r\n"
                    else:
                        out += self.reply
                conn.sendall(out)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=sorted(REPLIES))
def nonsense(request: pytest.FixtureRequest) -> Iterator[NonsenseServer]:
    server = NonsenseServer(REPLIES[request.param])
    yield server
    server.close()


def _cache(settings: Any, server: NonsenseServer, **options: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": server.url,
            "OPTIONS": {"RETRY_ATTEMPTS": 0, "STATS_FLUSH_INTERVAL": 0, **options},
        }
    }
    return caches["default"]


CALLS: dict[str, Callable[[Any], Any]] = {
    "get": lambda cache: cache.get("k", "default"),
    "get_many": lambda cache: cache.get_many(["a", "b"]),
    "has_key": lambda cache: cache.has_key("k"),
    "ttl": lambda cache: cache.ttl("k"),
    "delete": lambda cache: cache.delete("k"),
    "delete_many": lambda cache: cache.delete_many(["a", "b"]),
    "keys": lambda cache: cache.keys("*"),
    "stats": lambda cache: cache.stats(),
    "aget": lambda cache: asyncio.run(cache.aget("k", "default")),
    "aget_many": lambda cache: asyncio.run(cache.aget_many(["a", "b"])),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_reply_of_the_wrong_kind_never_raises_into_the_caller(
    settings: Any, nonsense: NonsenseServer, call: str
) -> None:
    cache = _cache(settings, nonsense)
    result = CALLS[call](cache)  # no TypeError, ValueError or AttributeError
    if call in ("get", "aget"):
        assert result in ("default", None) or isinstance(result, str)
    if call in ("get_many", "aget_many"):
        assert isinstance(result, dict)


def test_a_counter_answered_with_nonsense_is_never_guessed(
    settings: Any, nonsense: NonsenseServer
) -> None:
    cache = _cache(settings, nonsense)
    if nonsense.reply == REPLIES["integer"]:
        assert cache.incr("n") == 42  # a number is what INCR answers
        return
    with pytest.raises(CacheUnavailable):
        cache.incr("n")


def test_strict_mode_raises_cache_unavailable_for_nonsense(settings: Any) -> None:
    server = NonsenseServer(REPLIES["integer"])
    try:
        cache = _cache(settings, server, STRICT=True)
        with pytest.raises(CacheUnavailable, match="unreadable reply to GET"):
            cache.get("k")
        with pytest.raises(CacheUnavailable, match="unreadable reply"):
            cache.get_many(["a", "b"])
    finally:
        server.close()


def test_a_misread_reply_is_counted_as_an_error(settings: Any) -> None:
    server = NonsenseServer(REPLIES["array"])
    try:
        cache = _cache(settings, server)
        before = cache.runtime.counters.errors
        assert cache.get("k") is None
        assert cache.runtime.counters.errors == before + 1
    finally:
        server.close()
