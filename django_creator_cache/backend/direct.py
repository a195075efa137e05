"""One command, or one transaction, on a single server (plain or Sentinel), sent the
short way.

redis-py's ``Redis.execute_command`` wraps every command in a closure, a retry frame and
its observability hooks; on a cache hit that is about a seventh of the call. ``Direct``
does what it does for one command (take a pooled connection, send, read, parse the reply
with the client's callbacks, hand the connection back) and nothing else on the way. A
first attempt that fails is handed to the connection's own retry policy, so what is
retried, how often and with what backoff stays redis-py's, and the resend guard
(``resend``) still decides per connection whether a lost reply may be sent again.
``transaction`` does the same for a MULTI/EXEC of a few commands (a redis-py
transaction pipeline costs several times the commands it carries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from .resend import mark_sent

_hiredis_pack: Callable[[Any], bytes] | None
try:  # the optional C parser packs a command without redis-py's per-argument Python
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is an optional extra
    _hiredis_pack = None


class Direct:
    """``execute_command`` of a single-server client for commands without options."""

    __slots__ = ("_callbacks", "_pool")

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._callbacks = client.response_callbacks  # read per call: it may change

    def __call__(self, *args: Any) -> Any:
        reply = _on_a_connection(self._pool, _exchange, args)
        parse = self._callbacks.get(args[0])
        return reply if parse is None else parse(reply)


def _exchange(conn: Any, args: Sequence[Any]) -> Any:
    conn.send_command(*args)
    return conn.read_response()


# How hiredis encodes text (redis-py's default too): other encodings pack the slow way.
_UTF8 = ("utf-8", "strict")


def _packed(conn: Any, transactions: Sequence[Sequence[Sequence[Any]]]) -> Any:
    """``transactions`` (each a few commands), each in MULTI/EXEC, as one buffer: hiredis
    packs each command when the connection encodes text its way, else redis-py's own
    packing."""
    whole: list[Sequence[Any]] = []
    for commands in transactions:
        whole += [("MULTI",), *commands, ("EXEC",)]
    encoder = conn.encoder
    if _hiredis_pack is None or (encoder.encoding, encoder.encoding_errors) != _UTF8:
        return conn.pack_commands(whole)
    return [b"".join([_hiredis_pack(command) for command in whole])]


def send_transactions(conn: Any, transactions: Sequence[Sequence[Sequence[Any]]]) -> None:
    """Write ``transactions`` on ``conn`` in one buffer (read each with ``read_transaction``)."""
    mark_sent(conn, [command for commands in transactions for command in commands])
    conn.send_packed_command(_packed(conn, transactions))


def read_transaction(conn: Any, count: int) -> Any:
    """Read every reply of a transaction of ``count`` commands (so the connection stays in
    step whatever fails); EXEC's list, or the first error reply raised."""
    error = None
    for _ in range(count + 1):  # +OK for MULTI, +QUEUED for each
        try:
            conn.read_response()
        except ResponseError as exc:
            error = error or exc
    try:
        replies = conn.read_response()
    except ResponseError as exc:  # EXECABORT: a command was refused while queued
        raise error or exc from None
    if error is not None:
        raise error
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _in_transaction(conn: Any, commands: Sequence[Sequence[Any]]) -> Any:
    send_transactions(conn, [commands])
    return read_transaction(conn, len(commands))


def transaction(client: Any, commands: Sequence[Sequence[Any]]) -> tuple[list[Any], bool]:
    """``commands`` run as one MULTI/EXEC on a ``pooled`` client: their replies, parsed by
    the client's callbacks as a redis-py pipeline would, and whether they were sent
    again after a lost reply (so they may have run twice)."""
    sent = [0]

    def exchange(conn: Any, commands: Sequence[Sequence[Any]]) -> Any:
        sent[0] += 1
        return _in_transaction(conn, commands)

    replies = _on_a_connection(client.connection_pool, exchange, commands)
    callbacks = client.response_callbacks
    out = []
    for command, reply in zip(commands, replies, strict=True):
        parse = callbacks.get(command[0])
        out.append(reply if parse is None else parse(reply))
    return out, sent[0] > 1


def _on_a_connection(pool: Any, exchange: Callable[[Any, Any], Any], args: Any) -> Any:
    """``exchange(conn, args)`` on a pooled connection, handed back after (and reconnected
    first when the server asked for it, as ``execute_command`` does)."""
    conn = pool.get_connection()
    try:
        try:
            return exchange(conn, args)
        except Exception as exc:  # what redis-py's retry policy retries, it retries
            return _retried(conn, exchange, args, exc)
        except BaseException:  # interrupted between sending and reading: a reply may be
            conn.disconnect()  # on its way, for whoever took the connection next
            raise
    finally:
        try:
            if conn.should_reconnect():
                conn.disconnect()
                conn.connect()
        finally:
            pool.release(conn)


def _retried(
    conn: Any, exchange: Callable[[Any, Any], Any], args: Any, first: BaseException
) -> Any:
    """The rest of redis-py's retry loop after a failed first attempt: the failure is
    replayed into ``conn.retry`` so its count, backoff and error filter apply as they
    would have inside ``execute_command`` (an error it does not retry comes out as is)."""
    pending = [first]

    def attempt() -> Any:
        if pending:
            raise pending.pop()
        return exchange(conn, args)

    return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())


def pooled(client: Any) -> bool:
    """Whether the short way fits ``client``: a sync single-server client with a pool (a
    Cluster routes and follows redirections; a single-connection client holds its own
    lock)."""
    return not hasattr(client, "nodes_manager") and getattr(client, "connection", None) is None


def command_sender(client: Any) -> Callable[..., Any]:
    """How the executor sends one command tuple on ``client``: ``Direct`` when ``pooled``,
    redis-py's ``execute_command`` otherwise."""
    return Direct(client) if pooled(client) else client.execute_command
