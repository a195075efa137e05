"""An embedded, in-process Redis for the example project and local demos.

With no Redis configured, the example project still runs on the real backend:
``start()`` serves fakeredis over TCP on a free loopback port, so the backend
talks to it through redis-py exactly as it would to ``redis-server``, Lua
scripts included. Data lives in memory and is gone when the process exits;
this is never meant for production. Nothing happens at import.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from fakeredis import TcpFakeServer

HOST = "127.0.0.1"
INSTALL_HINT = 'pip install "django-creator-cache[embedded]"'
# Older TcpFakeServers cannot serve redis-py 8 (no HELLO, or replies that time out).
MIN_FAKEREDIS = (2, 34)

_lock = threading.Lock()
_server: TcpFakeServer | None = None


def start() -> str:
    """Start the embedded server once per process; return its ``redis://`` URL.

    Thread-safe and idempotent: every call returns the same URL.
    """
    global _server
    with _lock:
        if _server is None:
            _server = _serve()
        return _url(_server)


def url() -> str | None:
    """The embedded server's URL if this process started one, else None."""
    server = _server
    return None if server is None else _url(server)


def _url(server: TcpFakeServer) -> str:
    return f"redis://{HOST}:{server.server_address[1]}/0"


def _serve() -> TcpFakeServer:
    try:
        import fakeredis
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The embedded Redis needs fakeredis: {INSTALL_HINT}, or set REDIS_URL"
        ) from exc
    if _version(fakeredis.__version__) < MIN_FAKEREDIS:
        wanted = ".".join(map(str, MIN_FAKEREDIS))
        raise ImproperlyConfigured(
            f"The embedded Redis needs fakeredis>={wanted}, found {fakeredis.__version__}: "
            f'pip install -U "fakeredis[lua]>={wanted}"'
        )
    if importlib.util.find_spec("lupa") is None:  # the backend's scripts need Lua
        raise ImproperlyConfigured(f"The embedded Redis needs Lua support (lupa): {INSTALL_HINT}")
    # Port 0: the kernel picks a free port, with no race between probing and binding.
    server = fakeredis.TcpFakeServer((HOST, 0), server_type="redis")
    # fakeredis makes connection threads non-daemon; the shared client's pooled
    # connections never close, so they would keep the process from exiting.
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, name="django-creator-cache-embedded-redis", daemon=True
    )
    thread.start()
    return server


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:2])
