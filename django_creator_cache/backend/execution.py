"""The one place this package talks to Redis: the failure policy and its two runners.

An operation is described once, as a generator: it yields requests (a command
tuple, a pipeline, a Lua script, a client method) and receives their replies,
then returns its result. ``Executor.run`` drives it on the alias's sync client,
``Executor.arun`` on the running event loop's async client; the operation
cannot tell which, so the sync and async sides cannot drift.

Around every request the executor applies the alias's policy, here and nowhere
else: an open circuit answers without touching the network; a Redis failure is
counted, logged once per outage and fed to the breaker; strict mode raises
``CacheUnavailable``; otherwise ``Unavailable`` is thrown into the operation at
the request that failed, and the operation decides what that means (a read
misses, a write reports False). An operation that does not catch it raises
``CacheUnavailable`` to its caller: a counter is never guessed. Any other way a
call can end (a cancelled coroutine, a signal handler's exception) releases the
circuit's probe, so nothing can leave the breaker half-open. With ``CACHE_METRICS``
on, each run is timed and each failure counted for the alias (``backend.metrics``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from redis.exceptions import NoScriptError, ResponseError

from ..exceptions import CacheUnavailable, CircuitOpen
from .direct import command_sender
from .policy import CLUSTER_NODE_ERRORS, OUTAGE_ERRORS, REDIS_ERRORS
from .replies import PARSE_ERRORS, unparsed
from .scripts import LuaScript

if TYPE_CHECKING:
    from .circuit import CircuitBreaker
    from .metrics import Metrics


class PolicyState(Protocol):
    """What the policy keeps per alias (``runtime.Runtime``): breaker, counters, fallback,
    metrics (None while ``CACHE_METRICS`` is off)."""

    breaker: CircuitBreaker
    counters: Any
    metrics: Metrics | None

    def recovered(self) -> None: ...


logger = logging.getLogger("django_creator_cache")

R = TypeVar("R")
# What an operation is: a generator of requests that returns its result.
Steps = Generator[Any, Any, R]
# Seconds between two warnings about error replies of one alias in one process.
WARN_EVERY = 60.0


class Unavailable(Exception):
    """Thrown into an operation where Redis did not answer its request.

    ``answered``: Redis did answer, with an error reply (``cause``), for a request
    that asked to see error replies (``Call(..., errors=True)``).
    """

    def __init__(self, cause: BaseException, answered: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.answered = answered


class Thrown:
    """What a failed request hands back to its operation: ``exc`` is thrown in there."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Request:
    """Something an operation asks Redis for, runnable on a sync or an async client."""

    __slots__ = ("errors",)
    # Sent even while the circuit is open (a health check that must see the server).
    through_open_circuit = False

    def __init__(self, errors: bool = False) -> None:
        self.errors = errors  # hand error replies to the operation instead of the policy

    def send(self, client: Any) -> Any:
        raise NotImplementedError

    async def asend(self, client: Any) -> Any:
        raise NotImplementedError


class Call(Request):
    """A method of the client: ``Call("mget_nonatomic", keys)``.

    ``awaitable=False`` for the few methods that are plain functions on async clients too.
    """

    __slots__ = ("args", "awaitable", "kwargs", "method")

    def __init__(
        self,
        method: str,
        *args: Any,
        errors: bool = False,
        awaitable: bool = True,
        **kwargs: Any,
    ) -> None:
        self.errors = errors
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.awaitable = awaitable

    def send(self, client: Any) -> Any:
        return getattr(client, self.method)(*self.args, **self.kwargs)

    async def asend(self, client: Any) -> Any:
        result = getattr(client, self.method)(*self.args, **self.kwargs)
        return await result if self.awaitable else result


class Pipe(Request):
    """Commands in one round trip per node (not a transaction); replies in order.

    ``partial=True``: a command's error reply comes back in its place (the caller judges
    which replies matter) instead of failing the request."""

    __slots__ = ("commands", "partial")

    def __init__(self, commands: Sequence[Sequence[Any]], partial: bool = False) -> None:
        super().__init__()
        self.commands = commands
        self.partial = partial

    def _queued(self, client: Any) -> Any:
        pipe = pipeline(client)
        for command in self.commands:
            pipe.execute_command(*command)
        return pipe

    def send(self, client: Any) -> Any:
        return self._queued(client).execute(raise_on_error=not self.partial)

    async def asend(self, client: Any) -> Any:
        return await self._queued(client).execute(raise_on_error=not self.partial)


class Local(Request):
    """A step that is not a Redis call (sleeping, computing a value): the runners run it
    the sync or the async way, outside the failure policy; what it raises is thrown
    into the operation, which may clean up (release a lock) before it propagates."""

    __slots__ = ()


class Sleep(Local):
    """Wait ``seconds``: ``time.sleep`` on the sync side, ``asyncio.sleep`` on the async one."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(self, client: Any) -> Any:
        time.sleep(self.seconds)

    async def asend(self, client: Any) -> Any:
        await asyncio.sleep(self.seconds)


class Compute(Local):
    """Call ``produce()``; on the async side its result is awaited if it is awaitable."""

    __slots__ = ("produce",)

    def __init__(self, produce: Callable[[], Any]) -> None:
        super().__init__()
        self.produce = produce

    def send(self, client: Any) -> Any:
        return self.produce()

    async def asend(self, client: Any) -> Any:
        value = self.produce()
        return await value if inspect.isawaitable(value) else value


def pipeline(client: Any) -> Any:
    """A non-transactional pipeline of ``client``, whatever its topology (sync or async):
    one round trip per node. A Cluster pipeline is never transactional; a single
    server's must be told."""
    return client.pipeline() if hasattr(client, "nodes_manager") else client.pipeline(False)


class Script(Request):
    """A Lua script as EVALSHA, its source sent once to a server that lacks it.

    On a Cluster every key of one script must share a slot (use a hash tag).
    """

    __slots__ = ("args", "keys", "script")

    def __init__(
        self,
        script: LuaScript,
        keys: Sequence[Any],
        args: Sequence[Any] = (),
        errors: bool = False,
    ) -> None:
        self.errors = errors
        self.script = script
        self.keys = keys
        self.args = args

    def send(self, client: Any) -> Any:
        return self.script(client, self.keys, self.args)

    async def asend(self, client: Any) -> Any:
        return await self.script.acall(client, self.keys, self.args)


class Do(Request):
    """A feature's own commands: ``action(client)`` (awaited on the async side).

    For code that needs a few commands the operations above do not cover; its
    failures are handled by the same policy.
    """

    __slots__ = ("action",)

    def __init__(self, action: Callable[[Any], Any]) -> None:
        super().__init__()
        self.action = action

    def send(self, client: Any) -> Any:
        return self.action(client)

    async def asend(self, client: Any) -> Any:
        return await self.action(client)


def _local(step: Callable[[Any], Any], client: Any) -> Any:
    try:
        return step(client)
    except Exception as exc:  # the operation's to handle (BaseException still propagates)
        return Thrown(exc)


async def _alocal(step: Callable[[Any], Any]) -> Any:
    try:
        return await step(None)
    except Exception as exc:
        return Thrown(exc)


class Executor:
    """Runs operations for one backend instance under its alias's failure policy."""

    __slots__ = (
        "_aclient",
        "_client",
        "_command",
        "_sync_client",
        "alias",
        "cluster",
        "location",
        "runtime",
        "strict",
    )

    def __init__(
        self,
        runtime: PolicyState,
        *,
        alias: str,
        location: str,
        strict: bool,
        cluster: bool,
        client: Callable[[], Any],
        aclient: Callable[[], Any],
    ) -> None:
        self.runtime = runtime
        self.alias = alias
        self.location = location
        self.strict = strict
        self.cluster = cluster
        self._client = client
        self._aclient = aclient
        self._sync_client: Any = None
        self._command: Callable[..., Any] | None = None

    def _sync(self) -> Any:
        """The alias's sync client, built on first use (and kept: the hot path asks often)."""
        client = self._sync_client
        if client is None:
            client = self._sync_client = self._client()
        return client

    def _sender(self) -> Callable[..., Any]:
        """How a command tuple goes to the sync client (``direct.command_sender``)."""
        command = self._command
        if command is None:
            command = self._command = command_sender(self._sync())
        return command

    # -- the two runners: everything else is shared ------------------------------------------

    def send(self, request: Any, operation: str, client: Any = None, errors: bool = False) -> Any:
        """Send one request under the policy (sync): its reply, or ``Thrown``.

        The hot path of every sync call, so the closed-circuit case is written out
        here (one command goes straight to the client); anything else takes ``_send``.
        ``errors``: error replies go to the operation (as a request's ``errors`` says)."""
        runtime = self.runtime
        breaker = runtime.breaker
        if not breaker.opened_at and (type(request) is tuple or not isinstance(request, Local)):
            try:
                if type(request) is tuple:
                    send = client.execute_command if client else self._command or self._sender()
                    reply = send(*request)
                else:
                    reply = request.send(client or self._sync_client or self._sync())  # type: ignore[union-attr]
            except BaseException as exc:
                return self._failed(exc, operation, request, errors)
            if breaker.failures:
                runtime.recovered()
            return reply
        return self._send(request, operation, client, errors)

    def run(self, steps: Steps[R], operation: str, client: Any = None) -> R:
        """Drive ``steps`` on the sync client (or ``client``) to its result, timed for the
        alias's metrics when it has them."""
        metrics = self.runtime.metrics
        if metrics is None:
            return self.drive(steps, operation, client)
        started = time.perf_counter()
        try:
            return self.drive(steps, operation, client)
        finally:
            metrics.observe(operation, time.perf_counter() - started)

    def drive(self, steps: Steps[R], operation: str, client: Any = None) -> R:
        """``run`` without the timing (for a caller that times the whole call itself)."""
        try:
            request = steps.send(None)
            while True:
                reply = self.send(request, operation, client)
                request = steps.throw(reply.exc) if type(reply) is Thrown else steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except Unavailable as exc:
            raise CacheUnavailable(self.alias, operation, exc.cause) from exc.cause

    async def arun(self, steps: Steps[R], operation: str, client: Any = None) -> R:
        """Drive ``steps`` on the running loop's async client (or ``client``) to its result."""
        metrics = self.runtime.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            done, item = self._step(steps, None, operation)
            while not done:
                reply = await self._asend(item, operation, client)
                done, item = self._step(steps, reply, operation)
            return item  # type: ignore[no-any-return]
        finally:
            if metrics is not None:
                metrics.observe(operation, time.perf_counter() - started)

    def _step(self, steps: Steps[Any], reply: Any, operation: str) -> tuple[bool, Any]:
        """Hand ``reply`` (or a failure) to the operation: (True, its result) or (False, its
        next request). A failure the operation does not handle is ``CacheUnavailable``."""
        try:
            if type(reply) is Thrown:
                return False, steps.throw(reply.exc)
            return False, steps.send(reply)
        except StopIteration as done:
            return True, done.value
        except Unavailable as exc:
            raise CacheUnavailable(self.alias, operation, exc.cause) from exc.cause

    def _send(self, request: Any, operation: str, client: Any, errors: bool = False) -> Any:
        try:
            if type(request) is tuple:
                if self.runtime.breaker.opened_at and (refused := self._admit(operation)):
                    return refused
                reply = (client.execute_command if client else self._sender())(*request)
            elif isinstance(request, Local):
                return _local(request.send, None)
            else:
                refused = None if request.through_open_circuit else self._admit(operation)
                reply = refused or request.send(client or self._sync())
        except BaseException as exc:
            return self._failed(exc, operation, request, errors)
        return self._answered(reply)

    async def _asend(self, request: Any, operation: str, client: Any) -> Any:
        try:
            if type(request) is tuple:
                if self.runtime.breaker.opened_at and (refused := self._admit(operation)):
                    return refused
                reply = await (client or self._aclient()).execute_command(*request)
            elif isinstance(request, Local):
                return await _alocal(request.asend)
            else:
                refused = None if request.through_open_circuit else self._admit(operation)
                reply = refused or await request.asend(client or self._aclient())
        except BaseException as exc:
            return self._failed(exc, operation, request)
        return self._answered(reply)

    # -- the policy ------------------------------------------------------------------------

    def _admit(self, operation: str) -> Thrown | None:
        """None if the request may go out; while the circuit is open, the failure instead."""
        breaker = self.runtime.breaker
        if not breaker.opened_at or breaker.allow():
            return None
        self.runtime.counters.short_circuits += 1
        if self.runtime.metrics is not None:
            self.runtime.metrics.count(operation, "short_circuit")
        cause = CircuitOpen("circuit open")
        if self.strict:
            raise CacheUnavailable(self.alias, operation, cause)
        return Thrown(Unavailable(cause))

    def _answered(self, reply: Any) -> Any:
        if self.runtime.breaker.failures and type(reply) is not Thrown:
            self.runtime.recovered()
        return reply

    def _failed(
        self, exc: BaseException, operation: str, request: Any, errors: bool = False
    ) -> Any:
        """What the operation gets for a request that ended in ``exc`` (raised if not Redis's)."""
        if isinstance(exc, PARSE_ERRORS) and not isinstance(request, Local):
            exc = unparsed(operation, exc)  # Redis sent what could not be read
        if not isinstance(exc, REDIS_ERRORS):
            # Cancelled, interrupted, or our own bug: the probe (if this was it) is over.
            self.runtime.breaker.abandon()
            raise exc
        if (
            isinstance(exc, ResponseError)
            and not isinstance(exc, OUTAGE_ERRORS)
            and (
                errors
                or getattr(request, "errors", False)
                # An EVALSHA command met a server without its script: the caller sends it.
                or (isinstance(exc, NoScriptError) and type(request) is tuple)
            )
        ):
            self._answered(None)
            return Thrown(Unavailable(exc, answered=True))
        self.fail(operation, exc)
        return Thrown(Unavailable(exc))

    def fail(self, operation: str, exc: BaseException) -> None:
        """Count and log a Redis failure; raise ``CacheUnavailable`` only in strict mode.

        Connection failures and timeouts feed the circuit breaker, which logs one
        warning per outage. Other error replies mean Redis did answer: logged at
        most once a minute, they count as a sign of life. On a Cluster a connection
        error or timeout concerns one node whose slots redis-py has re-routed: it
        must not open the alias-wide circuit and black out the healthy primaries
        (a cluster that cannot be reached at all raises ``RedisClusterException``).
        """
        runtime = self.runtime
        counters = runtime.counters
        counters.errors += 1
        if runtime.metrics is not None:
            runtime.metrics.count(operation, "error")
        one_node = self.cluster and isinstance(exc, CLUSTER_NODE_ERRORS)
        if isinstance(exc, OUTAGE_ERRORS) and not one_node:
            counters.reconnects += 1
            if runtime.breaker.record_failure(exc, self.location):
                counters.outages += 1
        else:
            if runtime.breaker.failures:
                runtime.recovered()
            now = time.monotonic()
            if now - counters.last_warning > WARN_EVERY:
                counters.last_warning = now
                logger.warning(
                    "cache %r (%s): error reply during %s: %s",
                    self.alias,
                    self.location,
                    operation,
                    exc,
                )
        if self.strict:
            raise CacheUnavailable(self.alias, operation, exc) from exc
