"""The backend's operations, each described once as steps (see ``execution``).

``twin`` turns one description into the sync method and its async ``a``-twin,
so both sides send the same commands and handle the replies the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, overload

from ..execution import Steps
from ..single import One, methods

R = TypeVar("R")


@overload
def twin(
    steps: One, name: str | None = None
) -> tuple[Callable[..., Any], Callable[..., Coroutine[Any, Any, Any]]]: ...


@overload
def twin(
    steps: Callable[..., Steps[R]], name: str | None = None
) -> tuple[Callable[..., R], Callable[..., Coroutine[Any, Any, R]]]: ...


def twin(
    steps: Callable[..., Steps[R]] | One, name: str | None = None
) -> tuple[Callable[..., Any], Callable[..., Coroutine[Any, Any, Any]]]:
    """The sync and the async method of the operation ``steps(cache, *args, **kwargs)``
    (or of a ``One``, an operation of one request).

    ``client=`` (django-redis's explicit client) is passed to the runner, which
    sends the operation's requests on it instead of the alias's client.
    """
    if isinstance(steps, One):
        return methods(steps)
    operation = name or steps.__name__.strip("_")

    @functools.wraps(steps)
    def method(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> R:
        return self.executor.run(steps(self, *args, **kwargs), operation, client)  # type: ignore[no-any-return]

    @functools.wraps(steps)
    async def amethod(self: Any, *args: Any, client: Any = None, **kwargs: Any) -> R:
        return await self.executor.arun(steps(self, *args, **kwargs), operation, client)  # type: ignore[no-any-return]

    method.__name__ = method.__qualname__ = operation
    amethod.__name__ = amethod.__qualname__ = f"a{operation}"
    return method, amethod
