"""The embedded fakeredis server the example project runs on when no Redis is configured."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from django_creator_cache import embedded

ROOT = Path(__file__).resolve().parent.parent
THREAD_NAME = "django-creator-cache-embedded-redis"


@pytest.fixture
def embedded_cache(settings: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": embedded.start(),
            "OPTIONS": {"STRICT": True},
        }
    }
    cache = caches["default"]
    cache.clear()
    return cache


def test_nothing_happens_at_import() -> None:
    code = (
        "import threading\n"
        "from django_creator_cache import embedded\n"
        "assert embedded.url() is None\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_starts_once_and_returns_the_same_url() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        urls = set(pool.map(lambda _: embedded.start(), range(16)))
    assert len(urls) == 1
    url = urls.pop()
    assert url == embedded.start() == embedded.url()
    assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
    servers = [t for t in threading.enumerate() if t.name == THREAD_NAME]
    assert len(servers) == 1 and servers[0].daemon


def test_backend_set_get_incr(embedded_cache: Any) -> None:
    assert embedded_cache.set("campaign:1", {"budget": 1500}, 60)
    assert embedded_cache.get("campaign:1") == {"budget": 1500}
    assert 0 < embedded_cache.ttl("campaign:1") <= 60
    embedded_cache.set("views", 10)
    # incr runs the backend's registered Lua script (EVALSHA).
    assert embedded_cache.incr("views", 5) == 15
    assert embedded_cache.get("views") == 15
    with pytest.raises(ValueError):
        embedded_cache.incr("missing")
    assert embedded_cache.get_or_set("list", lambda: [1, 2]) == [1, 2]


def test_lua_eval_and_evalsha() -> None:
    client = redis.Redis.from_url(embedded.start())
    try:
        script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[1], 2)"
        assert client.eval(script, 1, "lua:eval", 40) == 42
        sha = client.script_load("return #KEYS + tonumber(ARGV[1])")
        assert client.evalsha(sha, 2, "a", "b", 5) == 7
    finally:
        client.close()


def test_too_old_fakeredis_is_refused_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import fakeredis

    monkeypatch.setattr(fakeredis, "__version__", "2.33.0")
    with pytest.raises(ImproperlyConfigured, match=r"fakeredis\[lua\]>=2\.34"):
        embedded._serve()


def test_process_exits_with_open_connections() -> None:
    # fakeredis serves each connection in a thread; they must not keep the process alive.
    code = (
        "import redis\n"
        "from django_creator_cache import embedded\n"
        "client = redis.Redis.from_url(embedded.start())\n"
        "assert client.ping()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=30)
