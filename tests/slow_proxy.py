"""A small TCP proxy on loopback that can make a real Redis server look slow.

``SlowProxy(upstream)`` listens on ``127.0.0.1`` on a free port and forwards every
connection to ``upstream`` (host, port). Requests go through untouched; replies
(server → client data) are held back by ``delay`` seconds, read when each chunk
arrives, so a test can switch a healthy server to "slow past the command
timeout" and back while clients stay connected. The server still executes every
command at once: only the reply is late, which is exactly what a client sees of
an overloaded or distant Redis.

Every thread is a daemon, every wait is bounded, and ``stop()`` (also run by the
context manager) closes the listener and all forwarded sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
_CHUNK = 65536
_JOIN_TIMEOUT = 2.0


class SlowProxy:
    """Threaded loopback TCP proxy with a settable reply ``delay`` (seconds)."""

    def __init__(self, upstream: tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = float(delay)
        self.host = HOST
        self.port = 0
        # Connections accepted from clients since start (a new socket opened by a client).
        self.accepted = 0
        # Bytes forwarded client → server (requests) since start.
        self.bytes_up = 0
        # Cut the reply to the next request containing these bytes: the request reaches the
        # server, its reply is dropped and the connection closed (a network cut after
        # Redis ran the command). One-shot.
        self.cut_when: bytes | None = None
        self._doomed: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"SlowProxy({self.host}:{self.port} -> {self.upstream}, delay={self.delay})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(64)
        # accept() wakes up regularly to notice stop().
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._spawn(self._accept_loop, "accept")

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(_JOIN_TIMEOUT)
        self._threads = [t for t in self._threads if t.is_alive()]

    def drop_connections(self) -> None:
        """Close every forwarded connection (clients see a reset), keep listening."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)

    # -- internals ---------------------------------------------------------------

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target,  # type: ignore[arg-type]
            args=args,
            name=f"slow-proxy-{self.port}-{name}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stopping.is_set() and listener is not None:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # listener closed by stop()
                return
            try:
                server = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self.accepted += 1
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._track(sock)
            self._spawn(self._pump, "up", client, server, False)
            self._spawn(self._pump, "down", server, client, True)

    def _arm(self, request: bytes, server: socket.socket) -> None:
        with self._lock:
            if self.cut_when is not None and self.cut_when in request:
                self.cut_when = None
                self._doomed.add(server)

    def _cut(self, server: socket.socket) -> bool:
        with self._lock:
            if server not in self._doomed:
                return False
            self._doomed.discard(server)
            return True

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        """Copy ``source`` to ``sink``; replies wait ``delay`` seconds each."""
        try:
            while not self._stopping.is_set():
                data = source.recv(_CHUNK)
                if not data:
                    break
                if delayed and self._cut(source):
                    break
                if not delayed:
                    self._arm(data, sink)
                if delayed:
                    delay = self.delay
                    if delay > 0 and self._stopping.wait(delay):
                        break
                else:
                    with self._lock:
                        self.bytes_up += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One side gone: close both, so a client that gave up on a reply never
            # receives it later, and the server side is released.
            _close(source)
            _close(sink)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
