"""Operations of one request, written without a generator: the form of the hot path.

Most calls (a ``get``, a ``set``, an ``incr``) are one command and its reply. As a
generator such an operation pays for the generator itself (creating it, resuming it
twice, its ``StopIteration``): about 5% of a ``get`` round trip. ``One`` describes it
as three plain functions instead, still once for both runners:

* ``ask(cache, *args, **kwargs)`` returns ``(request, state)``; ``Known(result)`` when
  the call needs no request (a local-tier hit); or ``Steps`` when it needs more than
  one (a local-tier miss): the runner drives them;
* ``answer(cache, reply, state)`` turns the reply into the result;
* ``unavailable(cache, exc, state)`` is what the call returns when Redis did not
  answer (``exc`` is the ``Unavailable``); raising it (or having no such function)
  makes the failure ``CacheUnavailable``, as in any operation.

A request may be a script's ``EVALSHA`` command (``LuaScript.command``), cheaper
than a ``Script`` request; a server that lacks the script gets it as a ``Script``.
``answer`` and ``unavailable`` may return ``More(steps)`` to go on with further
requests (deleting a value that cannot be read). ``steps_of`` is the meaning of a
``One`` as ordinary steps: the async runner runs that; the sync method takes the
short path, the same calls in the same order, timed like ``Executor.run``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from redis.exceptions import NoScriptError

from ..exceptions import CacheUnavailable
from .execution import Call, Script, Steps, Thrown, Unavailable
from .scripts import LuaScript


class More:
    """Returned by ``answer``/``unavailable``: the call goes on with ``steps``."""

    __slots__ = ("steps",)

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps


class Known:
    """Returned by ``ask`` when the call needs no request at all (a local-tier hit)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class One:
    """An operation of one request (see the module docstring)."""

    __slots__ = ("answer", "ask", "errors", "name", "unavailable")

    def __init__(
        self,
        name: str,
        ask: Callable[..., Any],
        answer: Callable[[Any, Any, Any], Any],
        unavailable: Callable[[Any, Unavailable, Any], Any] | None = None,
        *,
        errors: bool = False,
    ) -> None:
        self.name = name
        self.ask = ask
        self.answer = answer
        self.unavailable = unavailable
        # An error reply (Redis answered, refusing) reaches ``unavailable`` as
        # ``Unavailable(answered=True)`` instead of counting as a failure.
        self.errors = errors

    def __call__(self, cache: Any, *args: Any, **kwargs: Any) -> Steps[Any]:
        """The operation as steps, so it composes with ``yield from`` like any other."""
        return steps_of(self, cache, args, kwargs)


def steps_of(op: One, cache: Any, args: Any, kwargs: Any) -> Steps[Any]:
    asked = op.ask(cache, *args, **kwargs)
    if type(asked) is not tuple:
        if type(asked) is Known:
            return asked.value
        return (yield from asked)
    request, state = asked
    if type(request) is tuple:
        if request[0] == "EVALSHA":
            request = as_script(request, op.errors)
        elif op.errors:
            request = Call("execute_command", *request, errors=True)
    try:
        reply = yield request
    except Unavailable as exc:
        if op.unavailable is None:
            raise
        result = op.unavailable(cache, exc, state)
    else:
        result = op.answer(cache, reply, state)
    if type(result) is More:
        return (yield from result.steps)
    return result


def methods(op: One) -> tuple[Callable[..., Any], Callable[..., Coroutine[Any, Any, Any]]]:
    """The sync method (the short path) and the async twin of ``op``."""
    operation = op.name
    ask = op.ask
    answer = op.answer
    unavailable = op.unavailable
    errors = op.errors

    @functools.wraps(ask)
    def method(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        executor = self.executor
        metrics = executor.runtime.metrics
        started = perf_counter() if metrics is not None else 0.0
        try:
            asked = ask(self, *args, **kwargs)
            if type(asked) is not tuple:
                if type(asked) is Known:
                    return asked.value
                return executor.drive(asked, operation, client)
            request, state = asked
            reply = executor.send(request, operation, client, errors)
            if type(reply) is Thrown and _unloaded(reply.exc, request):
                reply = executor.send(as_script(request, errors), operation, client, errors)
            if type(reply) is Thrown:
                exc = reply.exc
                try:
                    if unavailable is None or type(exc) is not Unavailable:
                        raise exc
                    result = unavailable(self, exc, state)
                except Unavailable as failed:
                    raise CacheUnavailable(
                        executor.alias, operation, failed.cause
                    ) from failed.cause
            else:
                result = answer(self, reply, state)
            if type(result) is More:
                return executor.drive(result.steps, operation, client)
            return result
        finally:
            if metrics is not None:
                metrics.observe(operation, perf_counter() - started)

    @functools.wraps(ask)
    async def amethod(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> Any:
        return await self.executor.arun(steps_of(op, self, args, kwargs), operation, client)

    method.__name__ = method.__qualname__ = operation
    amethod.__name__ = amethod.__qualname__ = f"a{operation}"
    return method, amethod


def as_script(command: tuple[Any, ...], errors: bool) -> Script:
    """The ``Script`` request of an ``EVALSHA`` command (``LuaScript.command``): it
    sends the source to a server that lacks the script."""
    _, sha, count, *rest = command
    return Script(LuaScript.by_sha(sha), rest[:count], rest[count:], errors=errors)


def _unloaded(exc: BaseException, request: Any) -> bool:
    """Whether ``request``, an ``EVALSHA`` command, met a server without its script."""
    return (
        type(exc) is Unavailable
        and isinstance(exc.cause, NoScriptError)
        and type(request) is tuple
        and request[0] == "EVALSHA"
    )
