"""Statistics over time, for the admin page's chart of the last hour.

Storage: one Redis list per alias, ``<KEY_PREFIX>:dcc:history:<alias>``, newest
sample first. A sample is a small JSON object with the alias's site-wide
totals (hits, misses, sets, deletes, errors) and the time it was taken. It is
added with ``LPUSH`` and the list cut with ``LTRIM`` to
``CACHE_STATS_HISTORY_SIZE`` entries (60) in the same pipeline, so the list is
bounded whatever happens; the key also expires when nobody samples for twice
the window it covers.

Sampling: at most one sample per alias every ``CACHE_STATS_HISTORY_INTERVAL``
seconds (60), site-wide. Each process's statistics flusher tries once per
interval (``on_flush``, a hook of ``stats.registry``), and so does the admin
page when it is viewed; a try first takes a ticket key with ``SET NX PX
<interval>``, and only the process that gets it appends. With the defaults the
list covers the last hour at one sample a minute.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import conf
from .backend.execution import Pipe, Steps
from .exceptions import CacheUnavailable

if TYPE_CHECKING:
    from .backend.cache import RedisCache

logger = logging.getLogger("django_creator_cache")

FIELDS = ("hits", "misses", "sets", "deletes", "errors")
WINDOW = 3600.0
# Monotonic time before which this process does not try to sample a history key again.
_next_try: dict[str, float] = {}


@dataclass(frozen=True)
class Sample:
    """Site-wide totals of one alias at time ``t`` (Unix seconds)."""

    t: float
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Sample | None:
        """The sample stored in ``raw``; None if it is not one of ours."""
        try:
            data = json.loads(raw)
            return cls(float(data["t"]), *(int(data.get(name, 0)) for name in FIELDS))
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Point:
    """What happened between two samples: the chart's unit."""

    start: float
    end: float
    hit_rate: float | None
    """Hits / (hits + misses) in the interval; None when there were no reads."""
    ops_per_minute: float
    """Reads, writes and deletes per minute in the interval."""
    errors: int


def history_key(cache: RedisCache) -> str:
    """Redis key of ``cache``'s alias's samples (under its ``KEY_PREFIX``)."""
    return cache.internal_key("history", cache.alias)


def _settings() -> tuple[float, int]:
    interval = float(conf.read("CACHE_STATS_HISTORY_INTERVAL"))
    size = max(int(conf.read("CACHE_STATS_HISTORY_SIZE")), 2)
    return interval, size


def take(cache: RedisCache) -> Sample | None:
    """The alias's site-wide totals now; None when Redis cannot tell them."""
    stats = cache.stats(server=False)
    if not stats.get("site_wide"):
        return None
    return Sample(time.time(), *(int(stats[name]) for name in FIELDS))


def append(cache: RedisCache, sample: Sample) -> bool:
    """Add ``sample`` to the alias's capped list; False if Redis refused."""
    interval, size = _settings()
    key = history_key(cache)
    life = int(max(interval * size, WINDOW) * 2000)
    commands = [
        ("LPUSH", key, sample.to_json()),
        ("LTRIM", key, 0, size - 1),
        ("PEXPIRE", key, life),
    ]
    return _quietly(cache, "history", _send(Pipe(commands)), "not recorded") is not None


def maybe_sample(cache: RedisCache) -> bool:
    """Append a sample unless one was taken in the last interval (by any process).

    Returns whether this call appended one. Never raises on Redis failures.
    """
    interval, _ = _settings()
    if interval <= 0:
        return False
    key = history_key(cache)
    now = time.monotonic()
    if _next_try.get(key, float("-inf")) > now:
        return False
    _next_try[key] = now + interval
    sample = take(cache)  # no network while the circuit is open
    if sample is None:
        return False
    ticket_key = f"{key}{cache.key_separator}ticket"
    ms = max(int(interval * 1000), 1)
    ticket = _quietly(cache, "history", _send(("SET", ticket_key, b"1", "NX", "PX", ms)), "ticket")
    return bool(ticket) and append(cache, sample)


def samples(cache: RedisCache, window: float = WINDOW) -> list[Sample]:
    """Stored samples of the last ``window`` seconds, oldest first; [] if Redis fails."""
    _, size = _settings()
    raw = _quietly(cache, "history", _send(("LRANGE", history_key(cache), 0, size - 1)), "read")
    if raw is None:
        return []
    since = time.time() - window
    found = [s for s in map(Sample.from_json, raw) if s is not None and s.t >= since]
    return sorted(found, key=lambda s: s.t)


def _send(request: Any) -> Steps[Any]:
    return (yield request)


def _quietly(cache: RedisCache, operation: str, steps: Steps[Any], what: str) -> Any:
    """Run ``steps`` under the alias's failure policy; None (logged at DEBUG) if Redis
    could not answer: the chart is best effort and never raises into the admin."""
    try:
        return cache.run(steps, operation)
    except CacheUnavailable as exc:
        logger.debug("cache history %s for %r: %s", what, cache.alias, exc.cause)
        return None


def points(history: list[Sample]) -> list[Point]:
    """Rates between consecutive samples; an interval where a total went down
    (statistics reset, ``clear()``) is left out."""
    result = []
    for before, after in itertools.pairwise(history):
        seconds = after.t - before.t
        delta = {name: getattr(after, name) - getattr(before, name) for name in FIELDS}
        if seconds <= 0 or min(delta.values()) < 0:
            continue
        reads = delta["hits"] + delta["misses"]
        ops = reads + delta["sets"] + delta["deletes"]
        result.append(
            Point(
                start=before.t,
                end=after.t,
                hit_rate=delta["hits"] / reads if reads else None,
                ops_per_minute=ops * 60.0 / seconds,
                errors=delta["errors"],
            )
        )
    return result


def on_flush() -> None:
    """Flusher hook: try to sample every alias on this backend (see the module doc)."""
    from .health import our_caches

    if float(conf.read("CACHE_STATS_HISTORY_INTERVAL")) <= 0:
        return
    for _alias, cache in our_caches():
        maybe_sample(cache)


def reset() -> None:
    """Forget when this process last tried to sample (tests, settings changes)."""
    _next_try.clear()


def connect() -> None:
    """Sample from each process's statistics flusher (called from ``AppConfig.ready``)."""
    from .stats import registry

    registry.add_hook(on_flush)
