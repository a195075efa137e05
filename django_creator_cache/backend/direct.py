"""One command on a single server (plain or Sentinel), sent the short way.

redis-py's ``Redis.execute_command`` wraps every command in a closure, a retry frame and
its observability hooks; on a cache hit that is about a seventh of the call. ``Direct``
does what it does for one command (take a pooled connection, send, read, parse the reply
with the client's callbacks, hand the connection back) and nothing else on the way. A
first attempt that fails is handed to the connection's own retry policy, so what is
retried, how often and with what backoff stays redis-py's, and the resend guard
(``resend``) still decides per connection whether a lost reply may be sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Direct:
    """``execute_command`` of a single-server client for commands without options."""

    __slots__ = ("_callbacks", "_pool")

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._callbacks = client.response_callbacks  # read per call: it may change

    def __call__(self, *args: Any) -> Any:
        reply = _on_a_connection(self._pool, args)
        parse = self._callbacks.get(args[0])
        return reply if parse is None else parse(reply)


def _exchange(conn: Any, args: Sequence[Any]) -> Any:
    conn.send_command(*args)
    return conn.read_response()


def _on_a_connection(pool: Any, args: Sequence[Any]) -> Any:
    """``args`` sent and its reply read on a pooled connection, handed back after (and
    reconnected first when the server asked for it, as ``execute_command`` does)."""
    conn = pool.get_connection()
    try:
        try:
            return _exchange(conn, args)
        except Exception as exc:  # what redis-py's retry policy retries, it retries
            return _retried(conn, args, exc)
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


def _retried(conn: Any, args: Sequence[Any], first: BaseException) -> Any:
    """The rest of redis-py's retry loop after a failed first attempt: the failure is
    replayed into ``conn.retry`` so its count, backoff and error filter apply as they
    would have inside ``execute_command`` (an error it does not retry comes out as is)."""
    pending = [first]

    def attempt() -> Any:
        if pending:
            raise pending.pop()
        return _exchange(conn, args)

    return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())


def command_sender(client: Any) -> Callable[..., Any]:
    """How the executor sends one command tuple on ``client``: ``Direct`` for a pooled
    single-server client, redis-py's ``execute_command`` otherwise (a Cluster routes and
    follows redirections; a single-connection client holds its own lock)."""
    if hasattr(client, "nodes_manager") or getattr(client, "connection", None) is not None:
        return client.execute_command  # type: ignore[no-any-return]
    return Direct(client)
