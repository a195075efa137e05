"""A bounded in-process read tier in front of Redis, kept coherent by Redis itself.

Opt-in per alias (``OPTIONS["LOCAL_TIER"]``). ``get``/``get_many`` (and their
async twins) first look here; a hit costs a dict lookup and a decode, no round
trip. Coherence comes from server-assisted client-side caching (Redis
``CLIENT TRACKING``), in broadcast mode:

* per process, alias and primary node, one dedicated connection ``P`` (RESP2)
  runs ``CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <the alias's
  key prefixes>`` and then ``SUBSCRIBE __redis__:invalidate``: from then on the
  node sends ``P`` the name of every key under those prefixes that anyone
  changes, deletes, expires or evicts (and a flush-everything message on
  ``FLUSHDB``), whoever wrote it. A background thread reads ``P`` and drops
  those keys here. Broadcast mode keeps no per-key state on the server and
  lets fills use the ordinary connection pools (sync and async, every mode);
  its cost is one small message per write under the prefixes to every process
  (``KEY_PREFIXES`` narrows what is tracked);
* the same thread sends a ``PING`` on ``P`` every ``MAX_STALENESS / 4`` seconds,
  after checking with ``ROLE`` (and, on a Cluster, ``CLUSTER SLOTS``) on a second
  connection ``C`` to the same node that it is still the primary of the slots
  it tracks. Replies on ``P`` come in the order the server queued them, so when
  the ``PONG`` to a ``PING`` sent at time ``s`` arrives, every invalidation of a
  write that completed before ``s`` has been received and applied;
* the tier serves a hit only while the last such confirmation is younger than
  ``MAX_STALENESS``; otherwise (thread starved, node slow or gone) reads go to
  Redis. A lost connection, an error, a failover or a slot-map change flushes
  the tier and bypasses it until tracking is re-established and confirmed;
* before serving a hit, the reader drains whatever invalidations have already
  reached ``P``'s socket (a non-blocking ``poll``), so a write by another process
  on the same host is normally visible to the next read after it returns.

The guarantee: once a writer's call (any process, any client) has returned, no
process serves the previous value from its local tier more than
``MAX_STALENESS`` seconds later; in practice the delay is the delivery time of
one invalidation message (well under a millisecond on one host). Writes made
through this backend drop the local copy in the writing process when they
return (read-your-writes in that process). A value fetched from Redis is only
kept if no invalidation of its key (or flush) arrived between the start of the
fetch and its reply: the fetch first leaves a placeholder that an invalidation
removes, and the reply is stored only if its placeholder is still there. Local
entries also expire with the key's own TTL (read with the value) and ``TTL``.
Caveats: Redis split-brain during a failover, and keys moving to a newly added
Cluster primary before the next slot-map check (at most ``MAX_STALENESS / 4``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .options import BackendOptions, LocalTierOptions

logger = logging.getLogger("django_creator_cache")

MISSING: Any = object()
CHANNEL = b"__redis__:invalidate"
_PING = b"*1\r\n$4\r\nPING\r\n"
_SUBSCRIBE = b"*2\r\n$9\r\nSUBSCRIBE\r\n$20\r\n__redis__:invalidate\r\n"

# Fetch a value with its remaining life, so a local copy never outlives the key.
FETCH_ONE = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"
# Many keys (one slot, or a single server): values then PTTLs; a non-string key reads
# as a miss, like MGET.
FETCH_MANY = """
local n = #KEYS
local out = {}
for i = 1, n do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' and v.err then v = false end
  out[i] = v
  out[n + i] = redis.call('PTTL', KEYS[i])
end
return out
"""


class _Pending:
    """Placeholder of a fetch in flight; an invalidation of its key removes it."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        # Before the request left: the server's PTTL counts from a later moment, so a
        # local copy expiring at ``started + pttl`` never outlives the key.
        self.started = time.monotonic()


class _Lost(Exception):
    """The tracking of a node is gone (connection, role, slot map)."""


# -- a minimal incremental RESP2 reader --------------------------------------------------------


class _Error(bytes):
    """An error reply."""


class _RespReader:
    """Incremental RESP2 parser: ``feed`` bytes, ``gets`` complete replies or MISSING.

    Our own (not redis-py's) so a partial message never blocks a reader holding
    the tier's lock, with or without hiredis.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def gets(self) -> Any:
        try:
            value, end = self._parse(self._pos)
        except IndexError:
            return MISSING
        self._pos = end
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.index(b"\r\n", pos)  # ValueError if incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        if pos >= len(self._buf):
            raise IndexError
        try:
            line, nxt = self._line(pos + 1)
        except ValueError:
            raise IndexError from None
        kind = self._buf[pos]
        if kind == 0x2B:  # +
            return line, nxt
        if kind == 0x2D:  # -
            return _Error(line), nxt
        if kind == 0x3A:  # :
            return int(line), nxt
        if kind == 0x24:  # $
            size = int(line)
            if size < 0:
                return None, nxt
            if nxt + size + 2 > len(self._buf):
                raise IndexError
            return bytes(self._buf[nxt : nxt + size]), nxt + size + 2
        if kind == 0x2A:  # *
            count = int(line)
            if count < 0:
                return None, nxt
            items = []
            for _ in range(count):
                item, nxt = self._parse(nxt)
                items.append(item)
            return items, nxt
        raise _Lost(f"unexpected RESP byte {kind!r}")


# -- the tier ------------------------------------------------------------------------------------


class LocalTier:
    """LRU of raw values (as read from Redis) with their expiry; coherent via ``_Tracker``."""

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
        self._poller: Any = select.poll() if hasattr(select, "poll") else None
        self._watched: dict[int, _Node] = {}
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
        now = time.monotonic()
        if now >= self.valid_until:
            return MISSING
        with self._lock:
            poller = self._poller
            if poller is not None and self._watched and poller.poll(0):
                self._drain_ready()
                if now >= self.valid_until:
                    return MISSING
            entry = self._data.get(key)
            if type(entry) is not tuple:
                return MISSING
            raw, expires = entry
            if expires is not None and expires <= now:
                del self._data[key]
                return MISSING
            self._data.move_to_end(key)
            return raw

    def get_many(self, keys: list[str]) -> list[Any]:
        """``get`` of many keys under one lock and one poll: raw values or ``MISSING``."""
        now = time.monotonic()
        if now >= self.valid_until:
            return [MISSING] * len(keys)
        found: list[Any] = []
        with self._lock:
            poller = self._poller
            if poller is not None and self._watched and poller.poll(0):
                self._drain_ready()
                if now >= self.valid_until:
                    return [MISSING] * len(keys)
            data = self._data
            for key in keys:
                entry = data.get(key)
                if type(entry) is not tuple or (entry[1] is not None and entry[1] <= now):
                    found.append(MISSING)
                    continue
                data.move_to_end(key)
                found.append(entry[0])
        return found

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

    def fill(self, key: str, token: _Pending | None, raw: Any, pttl: Any) -> None:
        """Keep ``raw`` (fetched with ``token``) unless an invalidation came meanwhile."""
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
                    self._data[key] = (bytes(raw), expires)
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
                if self._poller is not None:
                    self._poller.register(node.fd, select.POLLIN)
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
        for fd in list(self._watched):
            if self._poller is not None:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._poller.unregister(fd)
        self._watched.clear()

    def _drain_ready(self) -> None:
        """Read every node whose socket has data (lock held); a broken one loses tracking."""
        nodes = list(self._watched.values())
        for node in nodes:
            try:
                node.drain(self)
            except (_Lost, OSError) as exc:
                node.broken = exc
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

    def _forked(self) -> None:
        """In a forked child: the parent's thread is gone and its sockets are shared;
        abandon them (never write to them) and serve nothing until restarted."""
        self._pid = -1
        self._lock = threading.Lock()
        self._data.clear()
        self.valid_until = 0.0
        self.tracking = False
        self._watched = {}
        self._poller = select.poll() if hasattr(select, "poll") else None
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


@dataclass
class _Node:
    """One primary: ``pub`` receives invalidations and PONGs, ``ctl`` checks its role."""

    address: str
    pub: Any
    ctl: Any
    sock: Any
    fd: int
    reader: _RespReader
    pings: deque[float]
    confirmed: float = 0.0
    subscribed: bool = False
    broken: BaseException | None = None

    def drain(self, tier: Any) -> None:
        """Apply every complete message available now (never blocks; lock held)."""
        sock = self.sock
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            if not data:
                raise _Lost(f"{self.address}: tracking connection closed")
            self.reader.feed(data)
            while (message := self.reader.gets()) is not MISSING:
                self._handle(tier, message)

    def _handle(self, tier: LocalTier, message: Any) -> None:
        if isinstance(message, _Error):
            raise _Lost(f"{self.address}: {message.decode(errors='replace')}")
        if not isinstance(message, list) or not message:
            raise _Lost(f"{self.address}: unexpected reply {message!r}")
        kind = message[0]
        if kind == b"message" and message[1] == CHANNEL:
            tier._invalidated(message[2])
        elif kind == b"pong":
            if not self.pings:
                raise _Lost(f"{self.address}: PONG without PING")
            self.confirmed = self.pings.popleft()
        elif kind == b"subscribe":
            self.subscribed = True


# -- the tracking thread ------------------------------------------------------------------------


class _Tracker:
    """Owns the tracking connections of one tier: (re)connects, reads, heartbeats."""

    def __init__(self, tier: LocalTier) -> None:
        self.tier = tier
        self.options = tier.options
        self.interval = max(tier.settings.max_staleness / 4, 0.005)
        self.nodes: list[_Node] = []
        self._expected: set[str] = set()
        self._stop = threading.Event()
        # Written to by stop() so a thread sleeping in select() wakes at once.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(
            target=self._run, name=f"django-creator-cache-tracking-{tier.name}", daemon=True
        )
        self._warned = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._close()
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def _run(self) -> None:
        backoff = 0.05
        next_round = 0.0
        while not self._stop.is_set():
            try:
                if not self.nodes:
                    self._connect()
                    backoff = 0.05
                    next_round = 0.0
                    if self._warned:
                        self._warned = False
                        logger.info("cache %r: local tier tracking restored", self.tier.name)
                now = time.monotonic()
                if now >= next_round:
                    self._round()
                    next_round = now + self.interval
                self._wait(max(next_round - time.monotonic(), 0.0))
            except Exception as exc:  # any failure: stop serving, reconnect with backoff
                self._lost(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    # -- connecting ------------------------------------------------------------------------

    def _connect(self) -> None:
        from . import connection

        client: Any = connection.get_client(self.options)
        if self.options.mode == "cluster":
            primaries = client.get_primaries()
            if not primaries or any(n.redis_connection is None for n in primaries):
                client.nodes_manager.initialize()
                raise _Lost("no client for every primary yet")
            pools = [node.redis_connection.connection_pool for node in primaries]
        else:
            pools = [client.connection_pool]
        nodes = [self._node(pool) for pool in pools]
        if self.options.mode == "cluster":
            self._expected = self._primaries(nodes[0])
            if self._expected != {n.address for n in nodes}:
                for node in nodes:
                    _close_node(node)
                client.nodes_manager.initialize()  # re-read the slot map, then retry
                raise _Lost("the cluster's primaries changed while connecting")
        self.nodes = nodes
        self.tier._watch(nodes)

    def _node(self, pool: Any) -> _Node:
        kwargs = {**pool.connection_kwargs, "protocol": 2}
        pub = pool.connection_class(**kwargs)
        pub.connect()
        ctl = pool.connection_class(**kwargs)
        ctl.connect()
        address = _address(pub)
        if _address(ctl) != address:  # a Sentinel failover between the two connects
            pub.disconnect()
            ctl.disconnect()
            raise _Lost("the primary changed while connecting")
        pub.send_command("CLIENT", "ID")
        client_id = pub.read_response()
        prefixes: list[Any] = []
        for prefix in self.tier.prefixes:
            prefixes += ("PREFIX", prefix)
        pub.send_command("CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST", *prefixes)
        if pub.read_response() not in (b"OK", "OK"):
            raise _Lost(f"{address}: CLIENT TRACKING refused")
        sock = pub._sock
        sock.sendall(_SUBSCRIBE)  # from here on, replies are read raw (``_Node.drain``)
        sock.settimeout(0)
        node = _Node(address, pub, ctl, sock, sock.fileno(), _RespReader(), deque())
        deadline = time.monotonic() + max(self.options.command_timeout or 1.0, 0.1)
        while not node.subscribed:
            if time.monotonic() > deadline:
                raise _Lost(f"{address}: no SUBSCRIBE confirmation")
            select.select([sock], [], [], 0.05)
            node.drain(_NullTier())
        return node

    def _primaries(self, node: _Node) -> set[str]:
        """Addresses of the primaries serving slots, as ``node`` sees the cluster."""
        node.ctl.send_command("CLUSTER", "SLOTS")
        found = set()
        for entry in node.ctl.read_response():
            host, port = entry[2][0], entry[2][1]
            host = host.decode() if isinstance(host, bytes) else str(host)
            found.add(f"{host or node.ctl.host}:{int(port)}")
        return found

    # -- running ---------------------------------------------------------------------------

    def _round(self) -> None:
        """Check each node is still the primary (and the slot map unchanged), then PING it."""
        sent = time.monotonic()
        for node in self.nodes:
            node.ctl.send_command("ROLE")
            role = node.ctl.read_response()
            name = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
            if name != "master":
                raise _Lost(f"{node.address} is a {name} now")
        if self.options.mode == "cluster" and self._primaries(self.nodes[0]) != self._expected:
            from . import connection

            cluster: Any = connection.get_client(self.options)
            cluster.nodes_manager.initialize()
            raise _Lost("the cluster's slot map changed")
        with self.tier._lock:
            for node in self.nodes:
                if node.broken is not None:
                    raise _Lost(f"{node.address}: {node.broken}")
                if len(node.pings) > 64:
                    raise _Lost(f"{node.address}: no PONG to 64 PINGs")
                node.pings.append(sent)
                node.sock.sendall(_PING)

    def _wait(self, timeout: float) -> None:
        """Sleep until a tracking socket has data or ``timeout``; apply what came."""
        select.select([self._wake_r, *(node.sock for node in self.nodes)], [], [], timeout)
        with self.tier._lock:
            for node in self.nodes:  # also TLS bytes already decrypted, which select misses
                node.drain(self.tier)  # raises _Lost / OSError: handled by _run
            self.tier._confirmed(self.nodes)

    def _lost(self, exc: BaseException) -> None:
        self.tier._lose()
        self._close()
        if not self._stop.is_set() and not self._warned:
            self._warned = True
            logger.warning(
                "cache %r: local tier bypassed, tracking lost (%s: %s); reconnecting",
                self.tier.name,
                type(exc).__name__,
                exc,
            )

    def _close(self) -> None:
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            _close_node(node)


class _NullTier:
    """Stands for the tier while a node subscribes (nothing to apply yet)."""

    def _invalidated(self, keys: list[bytes] | None) -> None:
        pass


def _address(conn: Any) -> str:
    path = getattr(conn, "path", None)
    if path:
        return str(path)
    return f"{conn.host}:{int(conn.port)}"


def _close_node(node: _Node) -> None:
    for conn in (node.pub, node.ctl):
        with contextlib.suppress(Exception):  # closing on the way out
            conn.disconnect()


# -- one tier per alias and process -----------------------------------------------------------

_tiers: dict[tuple[Any, ...], LocalTier] = {}
_tiers_lock = threading.Lock()


def tier_for(
    name: str, options: BackendOptions, settings: LocalTierOptions, prefixes: tuple[str, ...]
) -> LocalTier:
    """The process-wide tier of one alias and configuration (Django makes a backend per
    thread; they share it)."""
    key = (name, prefixes, settings)
    tier = _tiers.get(key)
    if tier is None:
        with _tiers_lock:
            tier = _tiers.get(key)
            if tier is None:
                tier = _tiers[key] = LocalTier(name, options, settings, prefixes)
    return tier


def shutdown_all() -> None:
    """Stop every tier's thread and forget them (tests, settings changes)."""
    with _tiers_lock:
        tiers = list(_tiers.values())
        _tiers.clear()
    for tier in tiers:
        tier.close()


def _reset_after_fork() -> None:
    global _tiers_lock
    _tiers_lock = threading.Lock()
    for tier in _tiers.values():
        tier._forked()  # the next reserve() restarts it in this process


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

__all__ = ["FETCH_MANY", "FETCH_ONE", "MISSING", "LocalTier", "shutdown_all", "tier_for"]
