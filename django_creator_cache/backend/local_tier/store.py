"""The local tier's store: a bounded LRU of raw values, served only while tracking holds.

The coherence guarantee and how it is kept are told in the package docstring.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from ..options import BackendOptions, LocalTierOptions
from .resp import MISSING, _Lost
from .tracker import _Node, _Tracker

# Decoded values safe to hand to every reader: no caller can change them.
_IMMUTABLE = frozenset({bytes, str, int, float, bool})


class _Pending:
    """Placeholder of a fetch in flight; an invalidation of its key removes it."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        # Before the request left: the server's PTTL counts from a later moment, so a
        # local copy expiring at ``started + pttl`` never outlives the key.
        self.started = time.monotonic()


class LocalTier:
    """LRU of raw values (as read from Redis) with their expiry (and immutable decoded value);
    coherent via ``_Tracker``."""

    def __init__(
        self,
        name: str,
        options: BackendOptions,
        settings: LocalTierOptions,
        prefixes: tuple[str, ...],
    ) -> None:
        self.name = name
        self.options = options
        self.settings = settings
        self.max_entries = settings.max_entries
        self.max_value_size = settings.max_value_size
        # Full-key prefixes tracked and kept here; () = every key.
        self.prefixes = prefixes
        self.covers: Callable[[str], bool] = (
            (lambda key: key.startswith(prefixes)) if prefixes else (lambda key: True)
        )
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        # Monotonic time until which hits may be served (0: tracking not confirmed).
        self.valid_until = 0.0
        self.tracking = False  # a tracking connection is up on every node (fills allowed)
        # Each reader thread polls the tracking sockets with its own poller, rebuilt when
        # ``_generation`` (the set of sockets) changes.
        self._local = threading.local()
        self._generation = 0
        self._watched: dict[int, _Node] = {}
        # Drains in progress: bytes taken off a socket, not yet applied. A reader that
        # finds none waiting on the socket still waits for these (under the lock).
        self._draining = 0
        self.invalidations = 0
        self.flushes = 0
        self._pid = os.getpid()
        self._tracker: _Tracker | None = None
        self._start()

    def __len__(self) -> int:
        return len(self._data)

    # -- reads ---------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The raw value of ``key`` if held and tracking is confirmed, else ``MISSING``."""
        held = self.held(key)
        return held if held is MISSING else held[0]

    def held(self, key: str) -> tuple[bytes, float | None, Any] | Any:
        """``(raw, expires, value)`` of ``key`` if held and tracking is confirmed, else
        ``MISSING``; ``value``: the decoded value when it is immutable (see ``fill``).

        No lock on a hit: threads read the dict as it is (one C call each, atomic under
        the GIL) after checking, with their own poller, that no invalidation is waiting
        on a tracking socket and none is being applied (``_draining``); only then does a
        reader take the lock, drain, and read behind the drain.
        """
        now = time.monotonic()
        if now >= self.valid_until:
            return MISSING
        if self._watched and (self._ready() or self._draining):
            with self._lock:
                self._drain_ready()
                if now >= self.valid_until:
                    return MISSING
        entry = self._data.get(key)
        if type(entry) is not tuple:
            return MISSING
        expires = entry[1]
        if expires is not None and expires <= now:
            return MISSING  # a fetch (``reserve``) replaces it
        with contextlib.suppress(KeyError):  # dropped meanwhile: still a hit read before
            self._data.move_to_end(key)
        return entry

    def get_many(self, keys: list[str]) -> list[Any]:
        """``held`` of many keys after one check of the tracking sockets."""
        now = time.monotonic()
        if now >= self.valid_until:
            return [MISSING] * len(keys)
        if self._watched and (self._ready() or self._draining):
            with self._lock:
                self._drain_ready()
                if now >= self.valid_until:
                    return [MISSING] * len(keys)
        found: list[Any] = []
        data = self._data
        for key in keys:
            entry = data.get(key)
            if type(entry) is not tuple or (entry[1] is not None and entry[1] <= now):
                found.append(MISSING)
                continue
            with contextlib.suppress(KeyError):
                data.move_to_end(key)
            found.append(entry)
        return found

    def _ready(self) -> bool:
        """Whether a tracking socket has bytes waiting (a ``poll(0)`` on this thread's own
        poller: a ``select.poll`` object refuses concurrent calls from two threads)."""
        local = self._local
        poller = getattr(local, "poller", None)
        if poller is None or local.generation != self._generation:
            if not hasattr(select, "poll"):
                return True  # no poll(): drain under the lock (non-blocking reads)
            poller = local.poller = select.poll()
            local.generation = self._generation
            for fd in list(self._watched):
                poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    def reserve(self, key: str) -> _Pending | None:
        """Start a fetch of ``key`` to keep here: a placeholder, or None (not kept)."""
        if not self.tracking:
            if self._pid != os.getpid():
                self._restart_after_fork()
            return None
        if not self.covers(key):
            return None
        token = _Pending()
        with self._lock:
            self._data[key] = token
            self._data.move_to_end(key)
            self._evict()
        return token

    def fill(
        self, key: str, token: _Pending | None, raw: Any, pttl: Any, value: Any = MISSING
    ) -> None:
        """Keep ``raw`` (fetched with ``token``) unless an invalidation came meanwhile.

        ``value``, what ``raw`` decodes to, is kept beside it when it is immutable (bytes,
        str, numbers): hits then skip the decode and hand out the same object each time,
        which callers may memoize on; anything mutable is decoded afresh on every hit.
        """
        if token is None:
            return
        keep = (
            raw is not None
            and len(raw) <= self.max_value_size
            and (pttl is None or int(pttl) == -1 or int(pttl) > 0)
        )
        expires = None
        if keep:
            ttl = None if pttl is None or int(pttl) < 0 else int(pttl) / 1000
            cap = self.settings.ttl
            if cap is not None:
                ttl = cap if ttl is None else min(ttl, cap)
            expires = None if ttl is None else token.started + ttl
        with self._lock:
            if self._data.get(key) is token:
                if keep:
                    shared = value if type(value) in _IMMUTABLE else MISSING
                    self._data[key] = (bytes(raw), expires, shared)
                else:
                    del self._data[key]

    # -- writes and invalidations -------------------------------------------------------

    def forget(self, key: str) -> None:
        """This process wrote or deleted ``key``: drop it (and any fetch in flight)."""
        with self._lock:
            self._data.pop(key, None)

    def forget_many(self, keys: Iterable[str]) -> None:
        with self._lock:
            pop = self._data.pop
            for key in keys:
                pop(key, None)

    def flush(self) -> None:
        """Drop everything, fetches in flight included."""
        with self._lock:
            self._data.clear()
            self.flushes += 1

    def _invalidated(self, keys: list[bytes] | None) -> None:
        """An invalidation message (called with the lock held)."""
        if keys is None:
            self._data.clear()
            self.flushes += 1
            return
        pop = self._data.pop
        for key in keys:
            pop(key.decode("utf-8", "surrogateescape"), None)
        self.invalidations += len(keys)

    def _evict(self) -> None:
        data = self._data
        while len(data) > self.max_entries:
            data.popitem(last=False)

    # -- tracking state -------------------------------------------------------------------

    def _watch(self, nodes: list[_Node]) -> None:
        """Tracking is up on ``nodes``: flush what may be stale, drain their sockets on reads."""
        with self._lock:
            self._unwatch_locked()
            for node in nodes:
                self._watched[node.fd] = node
            self._generation += 1
            self._data.clear()
            self.flushes += 1
            self.tracking = True

    def _lose(self) -> None:
        """Tracking is gone: stop serving, drop everything, refuse fills."""
        with self._lock:
            self.valid_until = 0.0
            self.tracking = False
            self._unwatch_locked()
            self._data.clear()
            self.flushes += 1

    def _unwatch_locked(self) -> None:
        self._watched.clear()
        self._generation += 1

    def _drain_ready(self) -> None:
        """Read every node whose socket has data (lock held); a broken one loses tracking."""
        nodes = list(self._watched.values())
        self._draining += 1
        try:
            for node in nodes:
                try:
                    node.drain(self)
                except (_Lost, OSError) as exc:
                    node.broken = exc
        finally:
            self._draining -= 1
        self._confirmed(nodes)  # a PONG read here confirms like one read by the thread

    def _confirmed(self, nodes: list[_Node]) -> None:
        """Recompute until when hits may be served (lock held)."""
        if not self.tracking or not nodes or any(n.broken for n in nodes):
            self.valid_until = 0.0
            return
        oldest = min(n.confirmed for n in nodes)
        self.valid_until = oldest + self.settings.max_staleness if oldest else 0.0

    def wait_serving(self, timeout: float = 5.0) -> bool:
        """Block until hits are served (tracking confirmed) or ``timeout``; for start-up
        checks and tests: a tier that is not ready yet simply reads from Redis."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() < self.valid_until:
                return True
            time.sleep(0.002)
        return False

    def state(self) -> dict[str, Any]:
        """For ``stats()``: entries, whether hits are served now, messages applied."""
        return {
            "entries": len(self._data),
            "max_entries": self.max_entries,
            "serving": time.monotonic() < self.valid_until,
            "tracking": self.tracking,
            "invalidations": self.invalidations,
            "flushes": self.flushes,
            "max_staleness": self.settings.max_staleness,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def _start(self) -> None:
        self._tracker = _Tracker(self)
        self._tracker.start()

    def _pause_for_fork(self) -> None:
        """Before ``fork()``: no thread may be alive across it (a child of a threaded process
        may deadlock), so stop tracking and serve nothing; the next read restarts the tier, in
        the parent as in the child."""
        tracker = self._tracker
        if tracker is None:
            return
        self._tracker = None
        tracker.stop()
        self._lose()
        self._pid = -1

    def _forked(self) -> None:
        """In a forked child: the parent's thread is gone and its sockets are shared;
        abandon them (never write to them) and serve nothing until restarted."""
        self._pid = -1
        self._lock = threading.Lock()
        self._data.clear()
        self.valid_until = 0.0
        self.tracking = False
        self._watched = {}
        self._local = threading.local()
        self._generation += 1
        self._draining = 0
        if self._tracker is not None:
            self._tracker.nodes = []
            self._tracker = None

    def _restart_after_fork(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        self._start()

    def close(self) -> None:
        """Stop the tracking thread and close its connections (tests, settings changes)."""
        tracker = self._tracker
        if tracker is not None:
            tracker.stop()
        self._lose()
