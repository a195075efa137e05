"""The tracking thread of a local tier: one ``_Node`` (two connections) per primary.

See the package docstring for how tracking and heartbeats keep the tier coherent.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .resp import MISSING, _Error, _Lost, _RespReader

# The tier a tracker serves (``store.LocalTier``; not imported: the store starts trackers).
LocalTier = Any

logger = logging.getLogger("django_creator_cache")

CHANNEL = b"__redis__:invalidate"
_PING = b"*1\r\n$4\r\nPING\r\n"
_SUBSCRIBE = b"*2\r\n$9\r\nSUBSCRIBE\r\n$20\r\n__redis__:invalidate\r\n"


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
        from .. import connection

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
            from .. import connection

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
        tier = self.tier
        with tier._lock:
            tier._draining += 1  # readers wait for what this takes off the sockets
            try:
                for node in self.nodes:  # also TLS bytes already decrypted, which select misses
                    node.drain(tier)  # raises _Lost / OSError: handled by _run
            finally:
                tier._draining -= 1
            tier._confirmed(self.nodes)

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
