"""Cache warmers: code that fills the cache ahead of traffic (``manage.py cache_warm``).

A warmer is a function registered with ``@warmer("name", ttl=...)`` that
yields ``(key, fetcher)`` pairs (or returns a mapping of key -> fetcher); each
fetcher is called and its value stored under the key. Warmers live in a
``cache_warmers`` module of any installed app, imported when the app registry
is ready, so nothing has to import them by hand.

A failing fetcher or store counts as a failure of its warmer and the others
still run; a warmer that raises while listing its keys fails as a whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils.module_loading import autodiscover_modules

from .ttl import TTLLike, parse_ttl

logger = logging.getLogger("django_creator_cache")

Fetcher: TypeAlias = Callable[[], Any]
Items: TypeAlias = Iterable[tuple[str, Fetcher]] | Mapping[str, Fetcher]
WarmerFunction: TypeAlias = Callable[[], Items]

# Values are stored with one set_many per batch: one round trip per node.
BATCH = 100


@dataclass(frozen=True)
class Warmer:
    """A registered warmer: its name, function, TTL and cache alias."""

    name: str
    function: WarmerFunction
    ttl: Any = DEFAULT_TIMEOUT
    alias: str = "default"
    description: str = ""

    def items(self) -> Iterator[tuple[str, Fetcher]]:
        produced = self.function()
        yield from produced.items() if isinstance(produced, Mapping) else produced


@dataclass
class WarmResult:
    """What one warmer did."""

    name: str
    keys: int = 0
    failures: int = 0
    seconds: float = 0.0
    error: str = ""
    failed_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.error


_registry: dict[str, Warmer] = {}


def warmer(
    name: str,
    *,
    ttl: TTLLike | object = DEFAULT_TIMEOUT,
    alias: str = "default",
    description: str = "",
) -> Callable[[WarmerFunction], WarmerFunction]:
    """Register the decorated function as the warmer ``name``.

    ``ttl``: how long warmed values live (default: the cache's timeout).
    Registering a second function under a taken name is an error.
    """
    seconds = ttl if ttl is DEFAULT_TIMEOUT else parse_ttl(ttl)  # type: ignore[arg-type]

    def register(function: WarmerFunction) -> WarmerFunction:
        existing = _registry.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"a cache warmer named {name!r} is already registered")
        doc = (function.__doc__ or "").strip().splitlines()
        _registry[name] = Warmer(
            name, function, seconds, alias, description or (doc[0] if doc else "")
        )
        return function

    return register


def unregister(name: str) -> None:
    _registry.pop(name, None)


def warmers() -> dict[str, Warmer]:
    """Every registered warmer by name, in registration order."""
    return dict(_registry)


def autodiscover() -> None:
    """Import ``cache_warmers`` from every installed app (registers their warmers)."""
    autodiscover_modules("cache_warmers")


def run(
    item: Warmer,
    *,
    dry_run: bool = False,
    progress: Callable[[WarmResult], None] | None = None,
) -> WarmResult:
    """Run one warmer; never raises for its failures, they are in the result.

    ``dry_run``: list the keys without calling fetchers or writing.
    ``progress`` is called after every batch.
    """
    result = WarmResult(item.name)
    started = time.perf_counter()
    cache = caches[item.alias]
    batch: dict[str, Any] = {}
    try:
        for key, fetch in item.items():
            result.keys += 1
            if dry_run:
                continue
            try:
                batch[key] = fetch()
            except Exception as exc:  # a fetcher is user code: any error is its failure
                logger.warning("cache warmer %r: fetching %r failed: %r", item.name, key, exc)
                _failed(result, key)
            if len(batch) >= BATCH:
                _store(cache, item, batch, result)
                if progress is not None:
                    progress(result)
        _store(cache, item, batch, result)
    except Exception as exc:  # the warmer itself broke while listing its keys
        logger.exception("cache warmer %r failed", item.name)
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    if progress is not None:
        progress(result)
    return result


def _store(cache: Any, item: Warmer, batch: dict[str, Any], result: WarmResult) -> None:
    if not batch:
        return
    try:
        failed = list(cache.set_many(batch, item.ttl) or ())
    except Exception:  # e.g. a value the serializer refuses: find it, keep the rest
        failed = [key for key, value in batch.items() if not _set_one(cache, item, key, value)]
    for key in failed:
        _failed(result, key)
    batch.clear()


def _set_one(cache: Any, item: Warmer, key: str, value: Any) -> bool:
    try:
        return cache.set(key, value, item.ttl) is not False  # other backends return None
    except Exception as exc:
        logger.warning("cache warmer %r: storing %r failed: %r", item.name, key, exc)
        return False


def _failed(result: WarmResult, key: str) -> None:
    result.failures += 1
    result.failed_keys.append(key)
