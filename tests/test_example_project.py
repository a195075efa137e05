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

# Migrates a throwaway database, then requests the campaign list as a browser would.
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
client = Client(HTTP_HOST="127.0.0.1")
first = client.get("/campaigns/")
second = client.get("/campaigns/")
Campaign.objects.create(creator_name="Noah Beats", platform="youtube", budget="4200.00")
third = client.get("/campaigns/")
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


def test_campaign_list_is_cached_and_invalidated_on_embedded_default(tmp_path: Path) -> None:
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
        # cache_from_env moves the password to OPTIONS: LOCATION has none to hide.
        shown = f"redis://{server.host}:{server.port}/0"
        assert (first["x_cache"], second["x_cache"]) == ("MISS", "HIT")
        assert f"{shown}</code> (REDIS_URL)" in first["body"]
        assert "s3cret-pw" not in first["body"]
        text = banner(env)
        assert text.strip() == f"Cache: Redis at {shown} (from REDIS_URL)"
        # The page's list really is in that server.
        client = redis.Redis.from_url(url)
        try:
            assert any(b"campaigns:list:" in key for key in client.keys("*"))
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


# Loads the demo data into a throwaway database and exercises every page and endpoint.
DEMO_SCRIPT = """
import datetime
import json
from decimal import Decimal

import django

django.setup()
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import setup_test_environment

from django_creator_cache.managers import managers

setup_test_environment()
connection.creation.create_test_db(verbosity=0)
cache.clear()
from example_project.creators.models import Campaign, Payout, Promoter, ViewSnapshot
from example_project.creators import services

out = {}
call_command("load_demo_data")
out["counts"] = [m.objects.count() for m in (Campaign, Promoter, ViewSnapshot, Payout)]
call_command("load_demo_data")  # already loaded: skipped
out["counts_again"] = [m.objects.count() for m in (Campaign, Promoter, ViewSnapshot, Payout)]
client = Client(HTTP_HOST="127.0.0.1")

call_command("cache_warm")
out["warmed"] = cache.get(services.DASHBOARD_KEY) is not None
top = services.popular_campaign_ids()[0]
out["summary_warmed"] = cache.get(services.summary_key(top)) is not None
pages = [client.get(url) for url in ("/", "/", f"/campaigns/{top}/", f"/campaigns/{top}/")]
out["pages"] = [(r.status_code, r["X-Cache"]) for r in pages]
out["dashboard"] = pages[0].content.decode()
out["head"] = client.head("/campaigns/").status_code

promoter = Promoter.objects.order_by("id").first()
body = {"promoter": promoter.pk, "campaign": top, "views": 5, "likes": 2}
first = client.post("/api/views/", json.dumps(body), content_type="application/json")
second = client.post("/api/views/", json.dumps(body), content_type="application/json")
out["views"] = [first.status_code, second.json()]
out["bad"] = client.post("/api/views/", "[]", content_type="application/json").status_code
stats = managers("default").view_tracking.get(promoter.pk, top)
out["tracked"] = [stats.views, stats.likes]
out["bot"] = [client.get(f"/api/bot-score/{promoter.pk}/{top}/").json()["cached"] for _ in "ab"]

payout = Payout.objects.first()
out["payout"] = client.get(f"/api/payouts/{payout.date}/").json()
out["payout_cached"] = managers("default").payouts.get(payout.date) is not None
payout.amount += Decimal("1.00")
payout.save()
out["payout_dropped"] = managers("default").payouts.get(payout.date) is None
out["payout_after"] = client.get(f"/api/payouts/{payout.date}/").json()["total_amount"]
out["payout_expected"] = str(payout.amount)
# A new snapshot invalidates the dashboard and the warmed summaries.
ViewSnapshot.objects.create(
    promoter=promoter, campaign_id=top, views=1, taken_at=datetime.datetime.now(datetime.UTC)
)
out["after_snapshot"] = [client.get("/").get("X-Cache"), cache.get(services.summary_key(top))]
print(json.dumps(out, default=str))
"""


def test_demo_data_pages_api_managers_and_warmers(tmp_path: Path) -> None:
    # The commands print too: the result is the last line.
    printed = run([sys.executable, "-c", DEMO_SCRIPT], project_env(tmp_path))
    out = json.loads(printed.splitlines()[-1])
    campaigns, promoters, snapshots, payouts = out["counts"]
    assert (campaigns, promoters, payouts) == (400, 1500, 90)
    assert snapshots > 5000
    assert out["counts_again"] == out["counts"]
    assert out["warmed"] and out["summary_warmed"]
    assert out["pages"] == [[200, "MISS"], [200, "HIT"], [200, "MISS"], [200, "HIT"]]
    assert "Top campaigns" in out["dashboard"] and "TikTok" in out["dashboard"]
    assert out["head"] == 200
    assert out["views"][0] == 200
    assert out["views"][1]["views"] == 10 and out["views"][1]["likes"] == 4
    assert out["bad"] == 400
    assert out["tracked"] == [10, 4]
    assert out["bot"] == [False, True]
    assert out["payout"]["processed_count"] + out["payout"]["pending_count"] > 0
    assert out["payout_cached"] and out["payout_dropped"]
    assert out["payout_after"] == out["payout_expected"]
    assert out["after_snapshot"] == ["MISS", None]
