"""The example project, run in subprocesses: this suite's own settings are ``tests.settings``.

Each subprocess gets a scrubbed environment (no ``REDIS_*``/``CACHE_*``) and a
database in ``tmp_path``, so the repository's ``example_project/db.sqlite3`` is
never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from tests.redis_servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60

# Migrates a throwaway database, then requests the home page as a browser would.
HOME_SCRIPT = """
import json
import django

django.setup()
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
connection.creation.create_test_db(verbosity=0)
cache.clear()
from example_project.creators.models import Campaign

Campaign.objects.create(creator_name="Ava Lens", platform="tiktok", budget="1500.00")
client = Client()
first = client.get("/")
second = client.get("/")
Campaign.objects.create(creator_name="Noah Beats", platform="youtube", budget="4200.00")
third = client.get("/")
print(json.dumps([
    {"status": r.status_code, "x_cache": r.get("X-Cache"), "body": r.content.decode()}
    for r in (first, second, third)
]))
"""


def project_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "CACHE_")) and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        EXAMPLE_PROJECT_DB=str(tmp_path / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def home_pages(env: dict[str, str]) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = json.loads(run([sys.executable, "-c", HOME_SCRIPT], env))
    return pages


def banner(env: dict[str, str]) -> str:
    code = "import django; django.setup(); import example_project.cacheinfo as c; print(c.banner())"
    return run([sys.executable, "-c", code], env)


def test_check_and_migrations_are_up_to_date(tmp_path: Path) -> None:
    env = project_env(tmp_path)
    out = run([sys.executable, "manage.py", "check", "--fail-level", "WARNING"], env)
    assert "no issues" in out
    run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"], env)


def test_home_page_is_cached_and_invalidated_on_embedded_default(tmp_path: Path) -> None:
    first, second, third = home_pages(project_env(tmp_path))
    assert [p["status"] for p in (first, second, third)] == [200, 200, 200]
    assert first["x_cache"] == "MISS"
    assert second["x_cache"] == "HIT"
    assert "Ava Lens" in second["body"] and "TikTok" in second["body"]
    # Saving a campaign drops the cached list.
    assert third["x_cache"] == "MISS"
    assert "Noah Beats" in third["body"]
    assert "django_creator_cache.backend.RedisCache" in first["body"]
    assert "redis://127.0.0.1:" in first["body"] and "(embedded)" in first["body"]
    assert "Set <code>REDIS_URL</code>" in first["body"]


def test_redis_url_is_used_and_its_password_never_shown(tmp_path: Path) -> None:
    with RedisServer() as server:
        url = f"redis://:s3cret-pw@{server.host}:{server.port}/0"
        client = redis.Redis(server.host, server.port)
        client.config_set("requirepass", "s3cret-pw")
        client.close()
        env = project_env(tmp_path, REDIS_URL=url)
        first, second, _ = home_pages(env)
        shown = f"redis://:***@{server.host}:{server.port}/0"
        assert (first["x_cache"], second["x_cache"]) == ("MISS", "HIT")
        assert f"{shown}</code> (REDIS_URL)" in first["body"]
        assert "s3cret-pw" not in first["body"]
        text = banner(env)
        assert text.strip() == f"Cache: Redis at {shown} (from REDIS_URL)"
        # The page's list really is in that server.
        client = redis.Redis.from_url(url)
        try:
            assert any(b"campaigns:list" in key for key in client.keys("*"))
        finally:
            client.close()


def test_runserver_prints_the_banner_and_serves(tmp_path: Path) -> None:
    env = project_env(tmp_path)
    run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + TIMEOUT
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    status = response.status
            except OSError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=TIMEOUT)
    assert status == 200, output
    assert "Cache: embedded in-process fakeredis at redis://127.0.0.1:" in output
    assert "set REDIS_URL to use a real Redis server" in output
    assert output.count("Cache: ") == 1
