"""Statistics of short-lived processes: counts pending at exit are flushed, and a process
that forks has no flusher thread alive at the fork (the child flushes its own counts)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.redis_servers import RedisServer

REPO = Path(__file__).resolve().parent.parent
STATS_KEY = "dcc:stats:default"

SETUP = """
import os, sys, threading, warnings
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django_creator_cache"],
    CACHES={{"default": {{
        "BACKEND": "django_creator_cache.backend.RedisCache", "LOCATION": {url!r},
    }}}},
    # Far longer than the process lives: only the flush at exit can count anything.
    CACHE_STATS_FLUSH_INTERVAL=600,
)
django.setup()
from django.core.cache import cache
"""


def _run(server: RedisServer, body: str) -> subprocess.CompletedProcess[str]:
    script = SETUP.format(url=server.url) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _counts(server: RedisServer) -> dict[str, int]:
    with server.client() as raw:
        return {k.decode(): int(v) for k, v in raw.hgetall(STATS_KEY).items()}


def test_a_process_that_exits_at_once_flushes_its_counts(own_redis_server: RedisServer) -> None:
    done = _run(
        own_redis_server,
        """
        for n in range(3):
            cache.set(f"k{n}", n)
        for _ in range(5):
            assert cache.get("k1") == 1
        assert cache.get("absent") is None and cache.get("absent2") is None
        """,
    )
    assert done.returncode == 0, done.stderr
    counts = _counts(own_redis_server)
    assert (counts.get("sets"), counts.get("hits"), counts.get("misses")) == (3, 5, 2), counts


def test_no_thread_is_alive_at_fork_and_the_child_flushes_its_own(
    own_redis_server: RedisServer,
) -> None:
    """Python 3.12+ warns when a threaded process forks (shown here: ``-W always``)."""
    done = _run(
        own_redis_server,
        """
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert any(t.name == "django-creator-cache-stats" for t in threading.enumerate())
        pid = os.fork()
        if pid == 0:
            for _ in range(4):
                cache.get("k")
            sys.exit(0)  # a normal exit: atexit runs, as in a gunicorn worker
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's next backend instance (a new thread has one) restarts its flusher.
        from django.core.cache import caches
        assert caches.create_connection("default").get("k") == 1
        assert any(t.name == "django-creator-cache-stats" for t in threading.enumerate())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "multi-threaded" not in done.stderr, done.stderr
    counts = _counts(own_redis_server)
    # Parent: 1 set, 2 hits; child: 4 hits, never the parent's counts a second time.
    assert (counts.get("sets"), counts.get("hits")) == (1, 6), counts


def test_a_process_with_a_local_tier_forks_with_no_thread_alive(
    own_redis_server: RedisServer,
) -> None:
    """The local tier's tracking thread stops before the fork; the child gets tracking of its
    own (it sees another client's write), and so does the parent again. Forked from a clean
    interpreter: the pytest process may hold threads of its own (asgiref's executor)."""
    done = _run(
        own_redis_server,
        """
        import json
        import redis
        from django.core.cache import caches
        from django.test.utils import override_settings

        entry = dict(settings.CACHES["default"], OPTIONS={"LOCAL_TIER": True})
        raw = redis.Redis.from_url(entry["LOCATION"])
        with override_settings(CACHES={"default": entry}):
            tiered = caches["default"]
            tiered.set("k", "parent")
            assert tiered.get("k") == "parent"
            assert tiered.local_tier is not None and tiered.local_tier.wait_serving(10)
            names = {t.name for t in threading.enumerate()}
            assert any(n.startswith("django-creator-cache-tracking") for n in names), names
            pid = os.fork()
            if pid == 0:
                seen = [tiered.get("k")]  # the tier restarts here; until then reads go to Redis
                tiered.local_tier.reserve(tiered.make_key("k"))
                seen.append(tiered.local_tier.wait_serving(10))
                tiered.get("k")
                raw.set(tiered.make_key("k"), b"7")
                seen.append(tiered.get("k"))
                print("CHILD", json.dumps(seen), flush=True)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert tiered.get("k") == 7  # the parent's tier, restarted, reads the new value
            assert tiered.local_tier.wait_serving(10)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert 'CHILD ["parent", true, 7]' in done.stdout, done.stdout + done.stderr
    assert "multi-threaded" not in done.stderr, done.stderr
