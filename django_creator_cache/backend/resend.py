"""Which commands may be sent again after a connection drops, and the connections that know.

redis-py retries a command when its connection fails, whether or not the server
already ran it: a reply lost after an ``INCR`` ran would count it twice. Our
connections remember what they sent since the last reply. A failure before the
command could reach the server (the connect) is retried as before, and so is one
after a command that gives the same result when run twice (``GET``, plain ``SET``,
``DEL``, ``EXPIRE``, ...). Otherwise the failure becomes ``ReplyLost``, which no
retry loop catches: the caller learns that the command may have run and decides
(a counter raises, a write reports failure), instead of a silent second run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection as AsyncAbstractConnection
from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixConnection
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .replies import check_replies

# Commands whose second run changes nothing the first did not (reads, plain writes, deletes,
# expiry) and connection bookkeeping. Anything not named here is never resent.
SAFE_COMMANDS = frozenset(
    [
        "GET",
        "MGET",
        "EXISTS",
        "TTL",
        "PTTL",
        "TYPE",
        "STRLEN",
        "GETRANGE",
        "SCAN",
        "KEYS",
        "DBSIZE",
        "RANDOMKEY",
        "HGET",
        "HMGET",
        "HGETALL",
        "HKEYS",
        "HVALS",
        "HLEN",
        "HEXISTS",
        "HSTRLEN",
        "HSCAN",
        "SMEMBERS",
        "SISMEMBER",
        "SMISMEMBER",
        "SCARD",
        "SRANDMEMBER",
        "SSCAN",
        "SINTER",
        "SUNION",
        "SDIFF",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZREVRANGEBYSCORE",
        "ZRANGEBYLEX",
        "ZREVRANGEBYLEX",
        "ZCARD",
        "ZCOUNT",
        "ZSCORE",
        "ZMSCORE",
        "ZRANK",
        "ZREVRANK",
        "ZSCAN",
        "ZLEXCOUNT",
        "LRANGE",
        "LLEN",
        "LINDEX",
        "SET",
        "SETEX",
        "PSETEX",
        "MSET",
        "DEL",
        "UNLINK",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "PERSIST",
        "HSET",
        "HMSET",
        "HDEL",
        "SADD",
        "SREM",
        "ZADD",
        "ZREM",
        "ZREMRANGEBYSCORE",
        "ZREMRANGEBYRANK",
        "LTRIM",
        "FLUSHDB",
        "FLUSHALL",
        "PING",
        "ECHO",
        "INFO",
        "TIME",
        "ROLE",
        "CLIENT",
        "CLUSTER",
        "COMMAND",
        "CONFIG",
        "MEMORY",
        "OBJECT",
        "SELECT",
        "AUTH",
        "HELLO",
        "READONLY",
        "READWRITE",
        "SENTINEL",
        "WAIT",
        # A transaction is as safe as the commands it queues, which are judged with it
        # (redis-py sends MULTI, the commands and EXEC packed together, and never
        # resends one that WATCHes).
        "MULTI",
        "EXEC",
        "DISCARD",
    ]
)
# Options that make a SET or ZADD depend on what was there (a second run answers differently).
_CONDITIONAL = frozenset({"NX", "XX", "GET", "INCR", "nx", "xx", "get", "incr"})
# ZADD options that leave a second run's effect the same as the first's.
_ZADD_FLAGS = frozenset({"GT", "LT", "CH"})
# Commands whose safety depends on their arguments.
_BY_ARGS = frozenset({"SET", "ZADD", "EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"})
# Command names (as sent) whose safety is the name's alone: the safe ones first, the
# others as they are met, so a command's safety is one dict lookup on the hot path.
_BY_NAME: dict[Any, bool] = dict.fromkeys(SAFE_COMMANDS - _BY_ARGS, True)
# Scripts known to only read (registered by the modules that define them).
_READ_ONLY_SCRIPTS: set[str] = set()


class ReplyLost(RedisError):
    """The connection failed after a command that must not run twice may have reached
    Redis: whether it ran is unknown. Not a ``ConnectionError``, so no retry resends it."""


def read_only_script(source: str, sha: str) -> None:
    """Declare a Lua script (by source and SHA1) free to resend: it only reads."""
    _READ_ONLY_SCRIPTS.update((source, sha))


def is_safe(args: Sequence[Any]) -> bool:
    """Whether the command ``args`` may be sent again if its reply is lost."""
    name = args[0]
    known = _BY_NAME.get(name)
    if known is not None:
        return known
    if name == "EVALSHA":
        return args[1] in _READ_ONLY_SCRIPTS
    if name == "SET":  # as the package sends them
        return _set_unconditional(args)
    if name == "ZADD":
        return _zadd_unconditional(args)
    word = (name if type(name) is str else bytes(name).decode()).upper().split(" ", 1)[0]
    if word == "SET":
        return _set_unconditional(args)
    if word == "ZADD":
        return _zadd_unconditional(args)
    if word in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"):
        return word.endswith("_RO") or args[1] in _READ_ONLY_SCRIPTS
    safe = word in SAFE_COMMANDS
    _BY_NAME[name] = safe
    return safe


def _set_unconditional(args: Sequence[Any]) -> bool:
    """A SET without an option that makes it depend on what was there: its options follow
    the value (a loop, not ``all()`` of a generator: this runs for every write sent)."""
    for arg in args[3:]:
        if type(arg) is str:
            if arg in _CONDITIONAL:
                return False
        elif type(arg) is bytes and arg.decode("latin-1").upper() in _CONDITIONAL:
            return False
    return True


def _zadd_unconditional(args: Sequence[Any]) -> bool:
    """A ZADD without NX, XX or INCR: its options come between the key and the first
    score; the members after may be any text (a member named "nx" is no option)."""
    for arg in args[2:]:
        if type(arg) is bytes:
            arg = arg.decode("latin-1")
        if type(arg) is not str:
            return True  # a number: the first score
        word = arg.upper()
        if word in _CONDITIONAL:
            return False
        if word not in _ZADD_FLAGS:
            return True  # the first score
    return True


def _all_safe(commands: Iterable[Sequence[Any]]) -> bool:
    for args in commands:  # noqa: SIM110
        if not is_safe(args):
            return False
    return True


def mark_sent(conn: Any, commands: Iterable[Sequence[Any]]) -> None:
    """Tell a guarded connection what its caller is about to send packed by itself."""
    if isinstance(conn, _Marking):
        conn._unsafe_sent = not _all_safe(commands)


class _Marking:
    """What both guards share: remember whether what is being sent may not be resent."""

    _unsafe_sent = False

    def pack_command(self, *args: Any) -> Any:
        self._unsafe_sent = not is_safe(args)
        return super().pack_command(*args)  # type: ignore[misc]

    def pack_commands(self, commands: Iterable[Sequence[Any]]) -> Any:
        commands = list(commands)  # redis-py may pass a generator
        self._unsafe_sent = not _all_safe(commands)
        return super().pack_commands(commands)  # type: ignore[misc]

    def _reraise(self, exc: RedisConnectionError, what: str) -> None:
        """Raise ``exc`` again, or ``ReplyLost`` if an unsafe command may have run."""
        if self._unsafe_sent:
            raise ReplyLost(f"{what}: {exc}") from exc
        raise exc


class _Guard(_Marking):
    """Sync connection mixin: a lost reply to an unsafe command is ``ReplyLost``."""

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        safe = _BY_NAME.get(args[0])
        unsafe = not (safe if safe is not None else is_safe(args))
        packed = self._command_packer.pack(*args)  # type: ignore[attr-defined]
        self._send(packed, kwargs.get("check_health", True), unsafe)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._send(command, check_health, self._unsafe_sent)

    def _send(self, packed: Any, check_health: bool, unsafe: bool) -> None:
        """Send ``packed``, marked ``unsafe``: the connection's own commands first (the
        connect's handshake, a health check's ``PING``), which mark it themselves and
        whose failure sent nothing of the caller's, then the caller's."""
        if not self._sock:  # type: ignore[attr-defined]
            self.connect()  # type: ignore[attr-defined]
        if check_health:
            self.check_health()  # type: ignore[attr-defined]
        self._unsafe_sent = unsafe
        try:
            super().send_packed_command(packed, False)  # type: ignore[misc]
        except RedisConnectionError as exc:
            self._reraise(exc, "connection lost while sending")

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RedisConnectionError as exc:
            self._reraise(exc, "reply lost, the command may have run")


class _AsyncGuard(_Marking):
    """The same for redis.asyncio connections."""

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        packed = self.pack_command(*args)  # marks it
        await self._send(packed, kwargs.get("check_health", True), self._unsafe_sent)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        await self._send(command, check_health, self._unsafe_sent)

    async def _send(self, packed: Any, check_health: bool, unsafe: bool) -> None:
        """``_Guard._send`` for redis.asyncio."""
        if not self.is_connected:  # type: ignore[attr-defined]
            await self.connect()  # type: ignore[attr-defined]
        if check_health:
            await self.check_health()  # type: ignore[attr-defined]
        self._unsafe_sent = unsafe
        try:
            await super().send_packed_command(packed, False)  # type: ignore[misc]
        except RedisConnectionError as exc:
            self._reraise(exc, "connection lost while sending")

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RedisConnectionError as exc:
            self._reraise(exc, "reply lost, the command may have run")


def _made(mixin: type[Any], connection_class: type[Any], name: str) -> type[Any]:
    """``connection_class`` with ``mixin`` in front."""
    return type(name, (mixin, connection_class), {})


GuardedConnection = _made(_Guard, Connection, "GuardedConnection")
GuardedSSLConnection = _made(_Guard, SSLConnection, "GuardedSSLConnection")
GuardedUnixConnection = _made(_Guard, UnixDomainSocketConnection, "GuardedUnixConnection")
AsyncGuardedConnection = _made(_AsyncGuard, AsyncConnection, "AsyncGuardedConnection")
AsyncGuardedSSLConnection = _made(_AsyncGuard, AsyncSSLConnection, "AsyncGuardedSSLConnection")
AsyncGuardedUnixConnection = _made(_AsyncGuard, AsyncUnixConnection, "AsyncGuardedUnixConnection")

_SYNC = {
    Connection: GuardedConnection,
    SSLConnection: GuardedSSLConnection,
    UnixDomainSocketConnection: GuardedUnixConnection,
}
_ASYNC = {
    AsyncConnection: AsyncGuardedConnection,
    AsyncSSLConnection: AsyncGuardedSSLConnection,
    AsyncUnixConnection: AsyncGuardedUnixConnection,
}


def guarded(connection_class: type[Any]) -> type[Any]:
    """The guarded twin of a redis-py connection class (itself if it has one already)."""
    if issubclass(connection_class, _Marking):
        return connection_class
    known = _SYNC.get(connection_class) or _ASYNC.get(connection_class)
    if known is not None:
        return known
    mixin = _AsyncGuard if issubclass(connection_class, AsyncAbstractConnection) else _Guard
    made = _made(mixin, connection_class, f"Guarded{connection_class.__name__}")
    (_ASYNC if mixin is _AsyncGuard else _SYNC)[connection_class] = made
    return made


def _guard_pool(pool: Any) -> None:
    pool.connection_class = guarded(pool.connection_class)
    # Connections the client opened while it was built (a Cluster reads its slot map).
    for conns in (
        getattr(pool, "_available_connections", ()),
        getattr(pool, "_in_use_connections", ()),
    ):
        for conn in list(conns):
            conn.__class__ = guarded(type(conn))


def _guard_replies(parser: Any) -> None:
    """Check the replies ``parser`` (a client or a node) parses (``replies``)."""
    callbacks = getattr(parser, "response_callbacks", None)
    if callbacks is not None:
        check_replies(callbacks)


def guard_client(client: Any) -> Any:
    """Make every connection ``client`` opens (now or later, on any node) a guarded one,
    and every reply it parses checked (``replies``).

    Works on ``Redis``, ``RedisCluster`` and their redis.asyncio twins; the classes the
    client chose (TCP, TLS, Unix socket, Sentinel) keep working, with the guard mixed in.
    """
    _guard_replies(client)
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        _guard_pool(client.connection_pool)
        return client
    kwargs = manager.connection_kwargs
    if "connection_class" in kwargs:
        kwargs["connection_class"] = guarded(kwargs["connection_class"])
    for nodes in (manager.startup_nodes, manager.nodes_cache):
        for node in nodes.values():
            if getattr(node, "redis_connection", None) is not None:  # sync node
                _guard_pool(node.redis_connection.connection_pool)
                _guard_replies(node.redis_connection)
            elif hasattr(node, "connection_class"):  # redis.asyncio node
                node.connection_class = guarded(node.connection_class)
                _guard_replies(node)
    create = getattr(manager, "create_redis_node", None)
    if create is not None and not getattr(create, "guarded", False):

        def create_guarded(*args: Any, **kw: Any) -> Any:
            made = create(*args, **kw)
            _guard_pool(made.connection_pool)
            _guard_replies(made)
            return made

        create_guarded.guarded = True  # type: ignore[attr-defined]
        manager.create_redis_node = create_guarded
    return client
