"""End to end: the example project served by ``runserver`` on a real redis-server.

Everything runs in subprocesses with the example project's own settings (this
suite's are ``tests.settings``), ``REDIS_URL`` pointing at a redis-server started
here, and a database in ``tmp_path``. Requests go over HTTP, as a browser's would.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from tests.redis_servers import RedisServer, free_port
from tests.test_example_project import ROOT, TIMEOUT, project_env, run

API_LIMIT = 60  # views.API_RATE, "60/m"


class Site:
    """The running example project: its base URL and a cookie-keeping HTTP client."""

    def __init__(self, base: str, env: dict[str, str], redis_url: str) -> None:
        self.base = base
        self.env = env
        self.redis_url = redis_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str, str]:
        """Status, headers, body and final URL (redirects followed); HTTP errors returned."""
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as response:
                body = response.read().decode()
                return response.status, dict(response.headers), body, response.url
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode(), error.url

    def manage(self, *args: str) -> str:
        return run([sys.executable, "manage.py", *args], self.env)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("example-e2e")
    with RedisServer() as server:
        env = project_env(tmp, REDIS_URL=server.url, DJANGO_DEBUG="0")
        port = free_port()
        site = Site(f"http://127.0.0.1:{port}", env, server.url)
        site.manage("migrate", "--noinput", "-v", "0")
        site.manage("load_demo_data")
        site.manage("create_demo_user")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "runserver did not answer"
                try:
                    urllib.request.urlopen(f"{site.base}/admin/login/", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield site
        finally:
            proc.terminate()
            proc.communicate(timeout=TIMEOUT)


def test_runs_on_the_redis_url(site: Site) -> None:
    status, _, body, _ = site.request("/")
    assert status == 200
    assert "(REDIS_URL)" in body and "embedded" not in body
    client = redis.Redis.from_url(site.redis_url)
    try:
        assert any(b"dashboard:page:" in key for key in client.keys("*")), client.keys("*")
    finally:
        client.close()
    # The package's health check, included by the project's URLconf.
    status, _, body, _ = site.request("/health/cache/")
    assert status == 200, body


def test_campaign_list_miss_hit_then_invalidated_by_a_save(site: Site) -> None:
    path = "/campaigns/?platform=youtube"
    first = site.request(path)
    second = site.request(path)
    assert (first[0], second[0]) == (200, 200)
    assert (first[1]["X-Cache"], second[1]["X-Cache"]) == ("MISS", "HIT")
    assert first[2] == second[2]
    # Saved in another process: invalidate_on drops the pages at commit, through Redis.
    site.manage(
        "shell",
        "-c",
        "from example_project.creators.models import Campaign\n"
        "c = Campaign.objects.filter(platform='youtube').order_by('-created_at', '-id').first()\n"
        "c.creator_name = 'Renamed Creator'\n"
        "c.save()",
    )
    third = site.request(path)
    assert third[1]["X-Cache"] == "MISS"
    assert "Renamed Creator" in third[2]
    assert site.request(path)[1]["X-Cache"] == "HIT"


def test_api_counts_then_answers_429(site: Site) -> None:
    ids = site.manage(
        "shell",
        "-c",
        "from example_project.creators.models import Campaign, Promoter\n"
        "print(Promoter.objects.order_by('id')[0].pk, Campaign.objects.order_by('id')[0].pk)",
    ).split()
    promoter, campaign = int(ids[-2]), int(ids[-1])
    body = json.dumps({"promoter": promoter, "campaign": campaign, "views": 1}).encode()
    headers = {"Content-Type": "application/json", "X-Api-Key": "e2e-key"}
    statuses = []
    for _ in range(API_LIMIT):
        status, response_headers, text, _ = site.request("/api/views/", body, headers)
        statuses.append(status)
    assert statuses == [200] * API_LIMIT
    assert json.loads(text)["views"] == API_LIMIT
    assert response_headers["RateLimit-Remaining"] == "0"
    status, refused_headers, _, _ = site.request("/api/views/", body, headers)
    assert status == 429
    assert int(refused_headers["Retry-After"]) >= 1
    score = json.loads(site.request(f"/api/bot-score/{promoter}/{campaign}/")[2])
    assert score["action"] in {"allow", "review", "block"}


def test_admin_reachable_for_the_demo_staff_user(site: Site) -> None:
    status, _, page, _ = site.request("/admin/login/?next=/admin/")
    assert status == 200
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": match.group(1),
            "username": "demo",
            "password": "demo",
            "next": "/admin/",
        }
    ).encode()
    status, _, body, url = site.request(
        "/admin/login/?next=/admin/", form, {"Referer": f"{site.base}/admin/login/"}
    )
    assert status == 200 and url == f"{site.base}/admin/"
    assert "Site administration" in body and "Campaigns" in body
    status, _, body, url = site.request("/admin/")
    assert (status, url) == (200, f"{site.base}/admin/")
    # The session lives in Redis (SESSION_ENGINE = "django_creator_cache.sessions").
    session = next(c.value for c in site.cookies if c.name == "sessionid")
    client = redis.Redis.from_url(site.redis_url)
    try:
        # Stored by the SHA-256 of its key, never the key itself.
        named = hashlib.sha256(session.encode()).hexdigest().encode()
        keys = client.keys("*session*")
        assert any(named in key for key in keys)
        assert not any(session.encode() in key for key in keys)
    finally:
        client.close()
