"""Run one description of a feature's flow from sync or from async code.

A flow is a generator that yields ``Both(sync, asynchronous, *args)`` (the same step
as a plain call and as an awaitable: ``cache.get``/``cache.aget``,
``lock.acquire``/``lock.aacquire``, ``time.sleep``/``asyncio.sleep``) and receives
its result; what a step raises is thrown back into the flow, which may clean up
before it propagates. ``run`` drives it with the plain calls, ``arun`` awaits the
others, so the flow itself (its decisions, its order of calls) exists once. It works
on the public API of any Django cache; the backend's own operations go further and
describe their Redis commands (``backend.execution``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R")
Flow = Generator["Both", Any, R]


class Both(NamedTuple):
    """One step, as a plain callable and as an async one, with its arguments."""

    sync: Callable[..., Any]
    asynchronous: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()

    @classmethod
    def of(cls, sync: Callable[..., Any], asynchronous: Callable[..., Any], *args: Any) -> Both:
        return cls(sync, asynchronous, args)


def _advance(flow: Flow[Any], reply: Any, error: Exception | None) -> tuple[bool, Any]:
    try:
        return False, flow.throw(error) if error is not None else flow.send(reply)
    except StopIteration as done:
        return True, done.value


def _call(step: Both) -> tuple[Any, Exception | None]:
    try:
        return step.sync(*step.args), None
    except Exception as exc:
        return None, exc


async def _acall(step: Both) -> tuple[Any, Exception | None]:
    try:
        return await step.asynchronous(*step.args), None
    except Exception as exc:
        return None, exc


def run(flow: Flow[R]) -> R:
    """Drive ``flow`` with the plain calls."""
    done, item = _advance(flow, None, None)
    while not done:
        done, item = _advance(flow, *_call(item))
    return item  # type: ignore[no-any-return]


async def arun(flow: Flow[R]) -> R:
    """Drive ``flow`` awaiting the async calls."""
    done, item = _advance(flow, None, None)
    while not done:
        done, item = _advance(flow, *await _acall(item))
    return item  # type: ignore[no-any-return]
