"""Replies Redis could not have meant: one check, where redis-py parses every reply.

A reply of the wrong kind (a number where a value was asked for, a status where a
count, a list where a TTL, anything redis-py's own parsers choke on) comes from a
server, proxy or network that misbehaves. Redis answered, but nothing usable: the
reply becomes ``UnreadableReply``, an error reply like any other, so the failure
policy applies (logged and counted; the call misses or reports a failure; strict mode
raises) instead of a ``TypeError`` from deep inside an operation reaching a view.

The check sits in each client's response callbacks, which redis-py runs for single
commands, pipelines and transactions alike, on every node of a Cluster.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from redis.exceptions import ResponseError


class UnreadableReply(ResponseError):
    """A reply of a kind its command never gives (or that redis-py cannot parse)."""


_BULK: frozenset[type] = frozenset({bytes, str, type(None)})
_INT: frozenset[type] = frozenset({int})
# The kind of reply of each command the package reads as redis-py hands it over (no
# callback of its own); ``MGET``'s items are bulk replies.
KINDS: dict[str, frozenset[type]] = {
    "GET": _BULK,
    "HGET": _BULK,
    "HGETALL": frozenset({dict}),  # RESP3 (RESP2's has a parser)
    "MGET": frozenset({list}),
    "TTL": _INT,
    "PTTL": _INT,
    "DEL": _INT,
    "UNLINK": _INT,
    "EXISTS": _INT,
    "INCRBY": _INT,
    "DECRBY": _INT,
    "STRLEN": _INT,
    "ZCARD": _INT,
    "SCARD": _INT,
}
# What a parser raises on a reply it cannot read (an operation reading a script's reply,
# too: it turns them into ``unreadable`` failures).
PARSE_ERRORS = (TypeError, ValueError, AttributeError, IndexError, KeyError)

Parse = Callable[..., Any]


def unreadable(command: str, reply: Any, why: str = "") -> UnreadableReply:
    shown = repr(reply)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return UnreadableReply(f"unreadable reply to {command}: {shown}{why}")


def unparsed(operation: str, exc: BaseException) -> UnreadableReply:
    """What a request that could not read what Redis sent (a ``TypeError`` from
    redis-py's parsing, say) failed with."""
    return UnreadableReply(f"unreadable reply during {operation}: {type(exc).__name__}: {exc}")


def _of_kind(command: str, kinds: frozenset[type]) -> Parse:
    def check(reply: Any, **options: Any) -> Any:
        if type(reply) not in kinds:
            raise unreadable(command, reply)
        if type(reply) is list and any(type(item) not in _BULK for item in reply):
            raise unreadable(command, reply)
        return reply

    check.checked = True  # type: ignore[attr-defined]
    return check


def _read_by(command: str, parse: Parse) -> Parse:
    def read(reply: Any, **options: Any) -> Any:
        try:
            return parse(reply, **options)
        except PARSE_ERRORS as exc:
            raise unreadable(command, reply, f" ({type(exc).__name__}: {exc})") from exc

    read.checked = True  # type: ignore[attr-defined]
    return read


def check_replies(callbacks: MutableMapping[str, Parse]) -> None:
    """Make a client's response callbacks (changed in place: pipelines copy them, and
    an async Cluster's nodes share them) turn a reply of the wrong kind into
    ``UnreadableReply``."""
    for command, parse in list(callbacks.items()):
        if not getattr(parse, "checked", False):
            callbacks[command] = _read_by(command, parse)
    for command, kinds in KINDS.items():
        if command not in callbacks:
            callbacks[command] = _of_kind(command, kinds)
