"""``cache_stats``, ``cache_health`` and ``cache_keys``, on real servers, up and down."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import Target, flush, single_entry
from tests.redis_servers import RedisServer
from tests.test_admin_page import fresh

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-ops"


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(name: str, *args: str) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(name, *args, stdout=out, stderr=io.StringIO())
    return raised.value, out.getvalue()


@pytest.fixture
def site_cache(redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    settings.CACHES = {"default": {**single_entry(redis_server), "KEY_PREFIX": "site"}}
    cache = caches["default"]
    fresh(cache)
    yield cache
    flush(cache)


@pytest.fixture
def down(own_redis_server: RedisServer, settings: Any) -> Any:
    """The default alias on a server that answered once, then stopped."""
    settings.CACHES = {"default": single_entry(own_redis_server, RETRY_DELAY=0.005)}
    settings.CACHE_HEALTH_RETRIES = 1
    settings.CACHE_HEALTH_INTERVAL = 0.01
    cache = caches["default"]
    cache.set("k", 1)
    cache.get("k")
    own_redis_server.stop()
    return cache


# -- cache_stats ------------------------------------------------------------------------------


def table(out: str) -> dict[str, str]:
    """``label: value`` of the lines of one alias's table (the heading left out)."""
    rows = [line.strip().split("  ", 1) for line in out.splitlines()[1:] if line.strip()]
    return {label: value.strip() for label, value in rows}


def test_stats_table(site_cache: Any, redis_server: RedisServer) -> None:
    site_cache.set_many({"a": 1, "b": 2, "c": 3})
    site_cache.get("a")
    site_cache.get("b")
    site_cache.get("nope")
    out, _ = run("cache_stats")
    assert out.splitlines()[0] == "cache 'default'  healthy"
    rows = table(out)
    assert rows["mode"] == "single"
    assert rows["location"] == redis_server.url
    assert rows["healthy"] == "yes"
    assert rows["latency"].endswith(" ms")
    assert rows["circuit"] == "closed"
    assert (rows["hits"], rows["misses"], rows["sets"], rows["errors"]) == ("2", "1", "3", "0")
    assert rows["hit rate"] == "66.7 %"
    assert rows["counts"] == "site-wide"
    assert int(rows["keys"]) >= 3
    assert rows["memory used"].endswith(("KB", "MB"))
    assert rows["memory peak"].endswith(("KB", "MB"))
    assert rows["evictions"] == "0"
    assert rows["redis version"].startswith("7.")
    assert rows["uptime"].endswith(" s")


def test_stats_json(site_cache: Any, redis_server: RedisServer) -> None:
    site_cache.set("a", 1)
    site_cache.get("a")
    out, _ = run("cache_stats", "--json")
    data = json.loads(out)
    report = data["default"]
    assert report["hits"] == 1 and report["sets"] == 1
    assert report["healthy"] is True and report["available"] is True
    assert report["location"] == redis_server.url
    assert report["redis_version"].startswith("7.")
    assert report["keys"] >= 1
    assert isinstance(report["latency_ms"], float)


def test_stats_aliases(site_cache: Any, settings: Any, redis_server: RedisServer) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "second": {**single_entry(redis_server), "KEY_PREFIX": "two"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    data = json.loads(run("cache_stats", "--json")[0])
    assert set(data) == {"default", "second"}
    assert set(json.loads(run("cache_stats", "--json", "--alias", "second")[0])) == {"second"}
    error, _ = fails("cache_stats", "--alias", "nope")
    assert "no cache alias 'nope'" in str(error)
    error, _ = fails("cache_stats", "--alias", "local")
    assert "does not use" in str(error)
    settings.CACHES = {"local": settings.CACHES["local"]}
    error, _ = fails("cache_stats")
    assert "no cache alias in CACHES uses" in str(error)


def test_stats_with_the_server_stopped(down: Any, own_redis_server: RedisServer) -> None:
    out, _ = run("cache_stats")
    assert "UNHEALTHY" in out
    assert "this process only" in out
    assert "ConnectionError" in out
    assert "memory used" not in out  # no server facts without a server
    report = json.loads(run("cache_stats", "--json")[0])["default"]
    assert report["healthy"] is False
    assert report["available"] is False
    assert report["hits"] >= 1  # this process's own counts


def test_no_password_in_output(own_redis_server: RedisServer, settings: Any) -> None:
    with own_redis_server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    port = own_redis_server.port
    base = "django_creator_cache.backend.RedisCache"
    settings.CACHES = {
        "default": {"BACKEND": base, "LOCATION": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"},
        "wrong": {"BACKEND": base, "LOCATION": f"redis://:x{PASSWORD}@127.0.0.1:{port}/0"},
    }
    settings.CACHE_HEALTH_RETRIES = 0
    caches["default"].set("k", 1)
    outputs = [run("cache_stats")[0], run("cache_stats", "--json")[0]]
    for args in ((), ("--json",)):
        error, out = fails("cache_health", *args)
        outputs += [out, str(error)]
    outputs += [run("cache_keys")[0]]
    error, _ = fails("cache_keys", "--alias", "wrong")
    outputs.append(str(error))
    for text in outputs:
        assert PASSWORD not in text
    assert f"redis://:***@127.0.0.1:{port}/0" in outputs[0]


@pytest.mark.slow
def test_stats_on_every_mode(target: Target) -> None:
    fresh(target.cache)
    out, _ = run("cache_stats")
    assert out.splitlines()[0] == "cache 'default'  healthy"
    assert table(out)["mode"] == target.mode
    data = json.loads(run("cache_stats", "--json")[0])["default"]
    assert data["mode"] == target.mode
    assert len(data["nodes"]) == (3 if target.mode == "cluster" else 1)
    if target.mode == "cluster":
        primaries = [line for line in out.splitlines() if line.strip().startswith("primary")]
        assert len(primaries) == 3


# -- cache_health ------------------------------------------------------------------------------


def test_health_ok(site_cache: Any) -> None:
    out, _ = run("cache_health")
    assert out.startswith("default  healthy  ")
    assert out.strip().endswith(" ms")
    data = json.loads(run("cache_health", "--json")[0])
    assert data["default"]["healthy"] is True
    assert data["default"]["error"] is None


def test_health_down_exits_1(
    down: Any, settings: Any, redis_server: RedisServer, own_redis_server: RedisServer
) -> None:
    settings.CACHES = {**settings.CACHES, "other": single_entry(redis_server, ALIAS="other")}
    error, out = fails("cache_health")
    assert error.returncode == 1
    assert str(error) == "1 of 2 cache(s) unhealthy: default"
    assert "default  UNHEALTHY  redis://127.0.0.1:" in out
    assert "ConnectionError" in out
    assert "other    healthy" in out
    # only the healthy alias: exit 0
    out, _ = run("cache_health", "--alias", "other")
    assert "other  healthy" in out
    error, out = fails("cache_health", "--json", "--alias", "default")
    assert json.loads(out)["default"]["healthy"] is False
    assert error.returncode == 1
    own_redis_server.start()
    run("cache_health")


def test_health_unknown_alias(site_cache: Any) -> None:
    error, _ = fails("cache_health", "--alias", "nope")
    assert "no cache alias 'nope'" in str(error)


def _probe(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py cache_health`` in a new process, as a probe would run it."""
    (tmp_path / "probe_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "import os\n"
        "CACHES = {'default': {'BACKEND': 'django_creator_cache.backend.RedisCache',\n"
        "                      'LOCATION': os.environ['PROBE_REDIS_URL']}}\n"
        "CACHE_HEALTH_RETRIES = 0\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "probe_settings",
        "PROBE_REDIS_URL": url,
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "cache_health", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_health_exit_status_for_probes(tmp_path: Path, own_redis_server: RedisServer) -> None:
    ok = _probe(tmp_path, own_redis_server.url)
    assert ok.returncode == 0, ok.stderr
    assert "default  healthy" in ok.stdout
    own_redis_server.stop()
    down = _probe(tmp_path, own_redis_server.url)
    assert down.returncode == 1
    assert "UNHEALTHY" in down.stdout
    assert "1 of 1 cache(s) unhealthy: default" in down.stderr
    assert "Traceback" not in down.stderr


# -- cache_keys --------------------------------------------------------------------------------


def test_keys_pattern_and_limit(site_cache: Any) -> None:
    site_cache.set_many({f"campaigns:{i}": i for i in range(250)})
    site_cache.set_many({"users:1": 1, "users:2": 2})
    out, err = run("cache_keys")
    keys = out.split()
    assert len(keys) == 100  # the default --limit
    assert all(k.startswith(("campaigns:", "users:")) for k in keys)
    assert "100 keys shown (cache 'default', pattern '*'); stopped at --limit 100" in err

    out, err = run("cache_keys", "--pattern", "users:*")
    assert sorted(out.split()) == ["users:1", "users:2"]
    assert err.strip() == "2 keys (cache 'default', pattern 'users:*')"

    out, err = run("cache_keys", "--pattern", "campaigns:*", "--limit", "1000")
    assert len(set(out.split())) == 250
    assert "250 keys (" in err

    out, err = run("cache_keys", "--pattern", "campaigns:1", "--limit", "1")
    assert out.split() == ["campaigns:1"]
    assert err.strip() == "1 key (cache 'default', pattern 'campaigns:1')"

    out, err = run("cache_keys", "--pattern", "none:*")
    assert out == "" and "0 keys" in err


def test_keys_bad_arguments(site_cache: Any) -> None:
    error, _ = fails("cache_keys", "--limit", "0")
    assert "--limit must be at least 1" in str(error)
    error, _ = fails("cache_keys", "--alias", "nope")
    assert "no cache alias 'nope'" in str(error)


def test_keys_with_the_server_stopped(down: Any) -> None:
    error, out = fails("cache_keys")
    assert error.returncode == 1
    assert "is unavailable" in str(error)
    assert out == ""


@pytest.mark.slow
def test_keys_on_every_mode(target: Target) -> None:
    target.cache.set_many({f"k:{i}": i for i in range(40)})
    out, _ = run("cache_keys", "--pattern", "k:*", "--limit", "1000")
    assert len(set(out.split())) == 40
    out, _ = run("cache_keys", "--limit", "7")
    assert len(out.split()) == 7
