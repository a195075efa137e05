"""Invalidations that wait for the transaction: queued with ``on_commit``, dropped on rollback.

Why at commit: invalidating inside the transaction leaves a window in which a
reader misses, reads the old row (the new one is not committed yet) and caches
it again, stale until it expires. After the commit every reader sees the new
row, so whatever is cached from then on is fresh. A rolled-back transaction
changed nothing, so Django discards its callbacks and nothing is invalidated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Model
from django.dispatch import Signal

F = TypeVar("F", bound=Callable[..., Any])

_suppressed: ContextVar[bool] = ContextVar("django_creator_cache_no_invalidation", default=False)

cache_invalidated = Signal()
"""Sent after each invalidation has run: ``sender`` is the model; ``prefixes`` and
``tags`` (tuples of str) say what was invalidated, ``alias`` in which cache,
``using`` after a commit on which database, ``deleted`` how many entries went."""


class no_invalidation:
    """Writes made inside this block (or decorated function, sync or async) invalidate nothing.

    For imports, fixtures and backfills that would otherwise invalidate once per
    row; invalidate once afterwards with ``invalidate_model``. Checked when the
    write happens (not at commit), per thread and per asyncio task.
    """

    def __init__(self) -> None:
        self._tokens: list[Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(_suppressed.set(True))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _suppressed.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        if iscoroutinefunction(func):

            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with no_invalidation():
                    return await func(*args, **kwargs)

            return cast(F, functools.wraps(func)(async_inner))

        def inner(*args: Any, **kwargs: Any) -> Any:
            with no_invalidation():
                return func(*args, **kwargs)

        return cast(F, functools.wraps(func)(inner))


def suppressed() -> bool:
    """Whether the current code runs inside ``no_invalidation``."""
    return _suppressed.get()


def schedule(
    model: type[Model], alias: str, prefixes: tuple[str, ...], tags: tuple[str, ...], using: str
) -> None:
    """Invalidate ``prefixes`` and ``tags`` in cache ``alias`` once ``using`` commits.

    Outside a transaction (autocommit) it runs now. ``robust``: the data is
    committed whatever the cache does, so a failure here is logged, not raised
    into the code that saved, and the other commit callbacks still run.
    """

    def invalidate() -> None:  # a function, not a partial: Django logs its __qualname__
        run(model, alias, prefixes, tags, using)

    transaction.on_commit(invalidate, using=using, robust=True)


def run(
    model: type[Model], alias: str, prefixes: tuple[str, ...], tags: tuple[str, ...], using: str
) -> int:
    """Invalidate now and send ``cache_invalidated``; returns the entries deleted."""
    cache: Any = caches[alias]
    if not hasattr(cache, "invalidate_prefix"):
        raise ImproperlyConfigured(
            f"invalidate_on({model._meta.label}): CACHES[{alias!r}] is a "
            f"{type(cache).__name__}, which cannot invalidate by prefix or tag; "
            "use django_creator_cache.backend.RedisCache"
        )
    deleted = sum(int(cache.invalidate_prefix(prefix)) for prefix in prefixes)
    if tags:
        deleted += int(cache.invalidate_tags(*tags))
    cache_invalidated.send(
        sender=model, prefixes=prefixes, tags=tags, alias=alias, using=using, deleted=deleted
    )
    return deleted
