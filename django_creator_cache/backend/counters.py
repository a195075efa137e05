"""Cache statistics without a Redis round trip on the hot path.

Each process counts in memory; a daemon thread adds the deltas to one Redis
hash per alias every ``CACHE_STATS_FLUSH_INTERVAL`` seconds (one pipeline for
all counters), so every process sees the site-wide totals while a get or a set
pays only an integer increment. A process that exits flushes what it still
holds (``atexit``), so a short-lived one (a management command, a job) counts
too. The thread is stopped before ``os.fork()``, so no thread is alive when a
process forks (gunicorn ``--preload``); the child starts its own, the parent
restarts it with its next backend instance.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import CacheUnavailable
from .execution import Pipe, Steps

logger = logging.getLogger("django_creator_cache")

COUNTERS = (
    "hits",
    "misses",
    "sets",
    "deletes",
    "errors",
    "corrupt",
    "outages",
    "reconnects",
    "short_circuits",
    "fallback_hits",
    # Reads served by the local tier (OPTIONS["LOCAL_TIER"]), no round trip; "hits" counts
    # only values read from Redis.
    "local_hits",
    "ratelimit_allowed",
    "ratelimit_blocked",
    "ratelimit_failopen",
    "ratelimit_failclosed",
)


class Counters:
    """In-process counters of one alias; ``+= 1`` under the GIL is enough here:
    statistics tolerate the rare lost increment between threads."""

    __slots__ = ("_flushed", "flush_target", "last_warning", *COUNTERS)

    hits: int
    misses: int
    sets: int
    deletes: int
    errors: int
    corrupt: int
    outages: int
    reconnects: int
    short_circuits: int
    fallback_hits: int
    local_hits: int
    ratelimit_allowed: int
    ratelimit_blocked: int
    ratelimit_failopen: int
    ratelimit_failclosed: int

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self._flushed = dict.fromkeys(COUNTERS, 0)
        # (redis client, hash key) to flush into; set by the backend on first use.
        self.flush_target: tuple[Any, str] | None = None
        # monotonic time of the last failure warning logged for this alias
        self.last_warning = float("-inf")

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def pending(self) -> dict[str, int]:
        """Counts not yet added to Redis."""
        now = self.snapshot()
        return {name: now[name] - self._flushed[name] for name in COUNTERS}

    def mark_flushed(self, delta: dict[str, int]) -> None:
        for name, value in delta.items():
            self._flushed[name] += value


def hit_rate(hits: int, misses: int) -> float:
    total = hits + misses
    return round(hits / total, 4) if total else 0.0


class _Registry:
    """Counters per (process, alias) and the thread that flushes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Counters] = {}
        self._thread: threading.Thread | None = None
        self._interval = 5.0
        self._wake = threading.Event()
        self._hooks: list[Callable[[], None]] = []
        # One flush at a time: the thread's and the one at exit must not send a delta twice.
        self._flushing = threading.Lock()
        self._stopping = False
        self._resume_after_fork = False
        self._exit_hook = False

    def add_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` in the flusher thread after each periodic flush (history samples)."""
        if hook not in self._hooks:
            self._hooks.append(hook)

    def counters(self, name: str) -> Counters:
        counters = self._counters.get(name)
        if counters is None:
            with self._lock:
                counters = self._counters.setdefault(name, Counters())
        return counters

    def start_flusher(self, interval: float) -> None:
        """Start the flushing thread once per process (no-op when interval is 0)."""
        if interval <= 0:
            return
        self._interval = min(self._interval, interval) if self._thread else interval
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if not self._exit_hook:
                atexit.register(self.flush_all)
                self._exit_hook = True
            if self._thread is None or not self._thread.is_alive():
                self._start_thread()

    def _start_thread(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="django-creator-cache-stats", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping:
                return
            self.tick()

    def before_fork(self) -> None:
        """Stop the thread so none is alive across ``fork()`` (a child of a threaded
        process may deadlock); waits at most for one flush in progress."""
        thread = self._thread
        self._resume_after_fork = thread is not None and thread.is_alive()
        if self._resume_after_fork:
            self._stopping = True
            self._wake.set()
            assert thread is not None
            thread.join(2.0)

    def after_fork_in_parent(self) -> None:
        """Not restarted here: CPython counts the parent's threads after this hook, and a
        thread started now is taken for one alive at the fork. The next backend instance
        (each new thread has one) restarts it, and ``atexit`` flushes in any case."""
        self._stopping = False  # a thread still in its last flush (join timed out) goes on

    def tick(self) -> None:
        """One round of the flusher thread: flush every alias, then run the hooks."""
        self.flush_all()
        for hook in list(self._hooks):
            try:
                hook()
            except Exception:  # a hook must never stop the flusher
                logger.exception("cache statistics hook %r failed", hook)

    def flush_all(self) -> None:
        with self._flushing:
            for counters in list(self._counters.values()):
                flush(counters)

    def after_fork(self) -> None:
        """A forked child must not re-add the parent's counts; it gets a flusher thread of
        its own if the parent had one."""
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._thread = None
        self._stopping = False
        self._wake = threading.Event()
        for counters in self._counters.values():
            counters._flushed = counters.snapshot()
        if self._resume_after_fork:  # the parent flushed periodically: so does the child
            self._start_thread()


registry = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=registry.before_fork,
        after_in_parent=registry.after_fork_in_parent,
        after_in_child=registry.after_fork,
    )


def _add(key: str, delta: dict[str, int]) -> Steps[None]:
    yield Pipe([("HINCRBY", key, name, value) for name, value in delta.items()])


def flush(counters: Counters) -> bool:
    """Add ``counters``' pending deltas to its Redis hash (through the alias's execution
    layer: an open circuit costs nothing); False if Redis refused, and the deltas wait
    for the next flush. A reply lost after the HINCRBYs ran is not resent, but the next
    flush sends the deltas again: statistics may then count one interval twice."""
    target = counters.flush_target
    if target is None:
        return True
    delta = {name: value for name, value in counters.pending().items() if value}
    if not delta:
        return True
    executor, key = target
    try:
        executor.run(_add(key, delta), "stats")
    except CacheUnavailable as exc:  # Redis down: keep the deltas for the next flush
        logger.debug("cache statistics not flushed to %s: %s", key, exc.cause)
        return False
    counters.mark_flushed(delta)
    return True


def totals(counters: Counters, shared: dict[bytes, bytes] | None) -> dict[str, Any]:
    """Site-wide counts: what Redis holds (``shared``, its statistics hash) plus this
    process's unflushed deltas; this process's own counts when Redis cannot tell."""
    stored: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    if shared is None:
        stored = counters.snapshot()
    else:
        for name, value in shared.items():
            field = name.decode() if isinstance(name, bytes) else str(name)
            if field in stored:
                stored[field] = int(value)
        for counter, pending in counters.pending().items():
            stored[counter] += pending
    result: dict[str, Any] = dict(stored)
    # A local-tier hit is a hit for the caller: the rate covers both kinds.
    result["hit_rate"] = hit_rate(stored["hits"] + stored["local_hits"], stored["misses"])
    result["site_wide"] = shared is not None
    return result
