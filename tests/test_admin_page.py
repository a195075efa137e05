"""The admin stats page: what it shows, to whom, on single, Sentinel and Cluster, and in outages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client

from django_creator_cache import history
from django_creator_cache.checks import check_history
from django_creator_cache.models import MANAGE_PERMISSION
from tests.conftest import Target, flush, single_entry
from tests.redis_servers import RedisServer

PAGE = "/admin/django_creator_cache/cachealias/"
PASSWORD = "s3cret-admin"


@pytest.fixture(autouse=True)
def _fresh_history() -> Iterator[None]:
    """Each test may sample at once (the once-a-minute throttle is per process)."""
    history.reset()
    yield
    history.reset()


def fresh(cache: Any) -> None:
    """Empty the servers, statistics included: this process's unflushed counts too."""
    cache.flush_stats()
    flush(cache)


def make_user(django_user_model: Any, name: str, *, staff: bool = True, perm: bool = True) -> Any:
    user = django_user_model.objects.create_user(name, password=None, is_staff=staff)
    if perm:
        user.user_permissions.add(
            Permission.objects.get(
                codename="manage_cache", content_type__app_label="django_creator_cache"
            )
        )
    return user


@pytest.fixture
def manager(db: None, django_user_model: Any) -> Client:
    client = Client()
    client.force_login(make_user(django_user_model, "manager"))
    return client


@pytest.fixture
def plain_staff(db: None, django_user_model: Any) -> Client:
    client = Client()
    client.force_login(make_user(django_user_model, "staff", perm=False))
    return client


@pytest.fixture
def site_cache(redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    """The default alias with a KEY_PREFIX, on the shared server, emptied."""
    settings.CACHES = {
        "default": {
            **single_entry(redis_server, INVALIDATION_PREFIXES=["campaigns"]),
            "KEY_PREFIX": "site",
        }
    }
    cache = caches["default"]
    fresh(cache)
    yield cache
    flush(cache)


def field(html: str, name: str, alias: str = "default") -> str:
    """The text of one facts cell (``data-field``) of ``alias``'s section."""
    section = html.split(f'id="cache-{alias}"', 1)[1].split("</section>", 1)[0]
    match = re.search(rf'data-field="{name}">([^<]*)<', section)
    assert match, f"no field {name!r} in the section of {alias!r}"
    return match.group(1).strip()


def prefix_counts(html: str) -> dict[str, int]:
    """The page's keys-per-prefix table."""
    rows = re.findall(
        r'data-prefix="([^"]+)"><td><code>[^<]*</code></td><td class="dcc-num">(\d+)<', html
    )
    return {prefix: int(count) for prefix, count in rows}


def test_permission_exists_after_migrate(db: None) -> None:
    perm = Permission.objects.get(codename="manage_cache")
    assert perm.content_type.app_label == "django_creator_cache"
    assert perm.content_type.model == "cachealias"
    # the unmanaged model has no default add/change/delete/view permissions: only ours
    codenames = Permission.objects.filter(content_type=perm.content_type)
    assert set(codenames.values_list("codename", flat=True)) == {
        "manage_cache",
        "view_cache_values",
    }
    call_command("makemigrations", "django_creator_cache", "--check", "--dry-run", verbosity=0)


def test_index_links_the_page_for_managers_only(
    site_cache: Any, manager: Client, plain_staff: Client
) -> None:
    index = manager.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in index
    assert "Cache statistics" in index
    assert "Creator cache" in index
    index = plain_staff.get("/admin/").content.decode()
    assert PAGE not in index
    assert "Cache statistics" not in index


def test_page_shows_statistics(site_cache: Any, manager: Client, redis_server: RedisServer) -> None:
    cache = site_cache
    for i in range(3):
        cache.set(f"campaigns:{i}", {"pk": i})
    cache.set("dashboard:main", "html")
    cache.set("flat", 1)
    assert cache.get("campaigns:0") == {"pk": 0}
    assert cache.get("campaigns:1") == {"pk": 1}
    assert cache.get("campaigns:9") is None
    cache.flush_stats()

    response = manager.get(PAGE)
    assert response.status_code == 200
    assert response.templates[0].name == "django_creator_cache/admin/stats.html"
    html = response.content.decode()
    assert "admin/base_site.html" in [t.name for t in response.templates]
    assert "/static/django_creator_cache/admin.css" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert field(html, "mode") == "Single server"
    assert field(html, "location") == redis_server.url
    assert field(html, "availability") == "available"
    assert field(html, "circuit") == "closed"
    assert field(html, "hits") == "2"
    assert field(html, "misses") == "1"
    assert field(html, "hit-rate") == "66.7 %"
    assert field(html, "sets") == "5"
    assert field(html, "errors") == "0"
    assert field(html, "redis-version").startswith("7.")
    assert re.fullmatch(r"\d+\.\d\d ms", field(html, "ping-latency"))
    assert field(html, "memory-used").endswith(("KB", "MB"))
    assert field(html, "memory-peak").endswith(("KB", "MB"))
    assert field(html, "evictions") == "0"
    assert int(field(html, "keys-in-the-database")) >= 5
    # keys per top-level prefix: a bounded SCAN sample, and the page says so
    assert prefix_counts(html) == {"campaigns": 3, "dashboard": 1, "(no separator)": 1}
    assert "A sample, not a census: a SCAN of at most 10000 keys" in html
    assert "5 keys looked at, which is all of them" in html
    # the page view took the first history sample; one sample is not a chart yet
    assert len(history.samples(cache)) == 1
    assert "Not enough samples yet (1 so far)" in html
    # actions: confirmation pages for this alias
    assert f'action="{PAGE}default/invalidate-prefix/"' in html
    assert f'action="{PAGE}default/invalidate-tag/"' in html
    assert f'href="{PAGE}default/clear/"' in html


def test_prefix_sample_is_bounded(site_cache: Any, manager: Client, settings: Any) -> None:
    site_cache.set_many({f"p{i % 30}:{i}": i for i in range(120)})
    settings.CACHE_ADMIN_SCAN_LIMIT = 50
    html = manager.get(PAGE).content.decode()
    counts = prefix_counts(html)
    assert sum(counts.values()) < 50  # the sample stopped at 50; not every prefix is listed
    assert len(counts) == 20  # the 20 largest prefixes
    assert "more prefixes (the 20 largest are shown)" in html
    assert "50 keys looked at, more exist" in html


def test_page_draws_the_last_hour(site_cache: Any, manager: Client) -> None:
    import time

    now = time.time()
    for minute in range(30, 0, -1):
        total = 30 - minute
        history.append(
            site_cache,
            history.Sample(now - minute * 60, hits=total * 90, misses=total * 10, sets=total * 5),
        )
    html = manager.get(PAGE).content.decode()
    svg = html.split('<svg class="dcc-chart"', 1)[1].split("</svg>", 1)[0]
    assert svg.count("<rect ") >= 29
    assert "<polyline" in svg
    assert "hit rate 90.0 %" in svg
    assert "105 operations/min" in svg
    assert "60 min ago" in svg and "now" in svg


def test_no_password_or_credentials_on_the_page(
    settings: Any, manager: Client, own_redis_server: RedisServer
) -> None:
    with own_redis_server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    port = own_redis_server.port
    base = "django_creator_cache.backend.RedisCache"
    settings.CACHES = {
        "default": {"BACKEND": base, "LOCATION": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"},
        "opts": {
            "BACKEND": base,
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "KEY_PREFIX": "o",
            "OPTIONS": {"PASSWORD": PASSWORD},
        },
        "wrong": {"BACKEND": base, "LOCATION": f"redis://:x{PASSWORD}@127.0.0.1:{port}/0"},
    }
    settings.CACHE_HEALTH_RETRIES = 0
    caches["default"].set("k", 1)
    html = manager.get(PAGE).content.decode()
    assert PASSWORD not in html
    assert f"redis://:***@127.0.0.1:{port}/0" in html
    assert field(html, "availability", "default") == "available"
    assert field(html, "availability", "wrong") == "unavailable"
    for alias in ("default", "opts", "wrong"):
        assert f'id="cache-{alias}"' in html
        confirm = manager.get(f"{PAGE}{alias}/invalidate-prefix/?prefix=x").content.decode()
        assert PASSWORD not in confirm


def test_other_backends_are_not_listed(site_cache: Any, manager: Client, settings: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    html = manager.get(PAGE).content.decode()
    assert 'id="cache-default"' in html
    assert 'id="cache-local"' not in html
    assert manager.get(f"{PAGE}local/invalidate-prefix/").status_code == 404


def test_page_needs_the_permission(
    site_cache: Any, plain_staff: Client, client: Client, django_user_model: Any
) -> None:
    assert plain_staff.get(PAGE).status_code == 403
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    # an active non-staff user with the permission: still no admin
    outsider = Client()
    outsider.force_login(make_user(django_user_model, "outsider", staff=False))
    assert outsider.get(PAGE).status_code == 302
    superuser = Client()
    superuser.force_login(
        django_user_model.objects.create_superuser("root", "root@example.com", None)
    )
    assert superuser.get(PAGE).status_code == 200
    assert superuser.get(PAGE).wsgi_request.user.has_perm(MANAGE_PERMISSION)


def test_page_with_the_server_stopped(
    own_redis_server: RedisServer, settings: Any, manager: Client
) -> None:
    settings.CACHES = {
        "default": {**single_entry(own_redis_server, RETRY_DELAY=0.005), "KEY_PREFIX": "site"}
    }
    settings.CACHE_HEALTH_RETRIES = 0
    cache = caches["default"]
    cache.set("campaigns:1", 1)
    cache.get("campaigns:1")
    own_redis_server.stop()
    for _ in range(6):  # open the circuit
        cache.get("campaigns:1")

    response = manager.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert field(html, "availability") == "unavailable"
    assert field(html, "circuit") in ("open", "half-open")
    assert field(html, "ping-latency") == "\N{EN DASH}"
    assert "Connection" in html  # the health error, for staff
    assert "this process only (Redis did not answer)" in html
    assert "Not available while the cache does not answer." in html
    assert field(html, "hits") == "1"  # this process's own count


def test_a_strict_alias_that_is_down_is_reported_not_raised(
    own_redis_server: RedisServer, settings: Any, manager: Client
) -> None:
    """``STRICT`` makes the site's own calls raise; the page, its actions and the
    commands that check health report the outage instead (no 500, no traceback)."""
    from io import StringIO

    from django.core.management.base import CommandError

    settings.CACHES = {
        "default": {
            **single_entry(own_redis_server, STRICT=True, RETRY_DELAY=0.005),
            "KEY_PREFIX": "site",
        }
    }
    settings.CACHE_HEALTH_RETRIES = 0
    own_redis_server.stop()

    response = manager.get(PAGE)
    assert response.status_code == 200
    assert field(response.content.decode(), "availability") == "unavailable"
    response = manager.post(f"{PAGE}default/clear/")
    assert response.status_code == 302  # refused, with a message: nothing was done
    with pytest.raises(CommandError, match="unhealthy"):
        call_command("cache_health", stdout=StringIO())
    with pytest.raises(CommandError, match="unavailable"):
        call_command("cache_keys", stdout=StringIO())
    out = StringIO()
    call_command("cache_stats", stdout=out)
    assert "default" in out.getvalue()


@pytest.mark.slow
def test_page_on_every_mode(target: Target, manager: Client) -> None:
    fresh(target.cache)
    target.cache.set("campaigns:1", 1)
    target.cache.get("campaigns:1")
    html = manager.get(PAGE).content.decode()
    mode = field(html, "mode")
    assert (
        mode
        == {
            "single": "Single server",
            "sentinel": "Sentinel (3 sentinels)",
            "cluster": "Cluster (3 primaries)",
        }[target.mode]
    )
    assert field(html, "availability") == "available"
    assert field(html, "hits") == "1"
    nodes = re.findall(r"<tr><td><code>(127\.0\.0\.1:\d+)</code></td>", html)
    assert len(nodes) == (3 if target.mode == "cluster" else 1)
    if target.mode == "sentinel":
        sentinels = field(html, "sentinels")
        assert sentinels.count("127.0.0.1:") == 3
    assert prefix_counts(html) == {"campaigns": 1}


def test_history_size_check(settings: Any) -> None:
    assert check_history() == []
    settings.CACHE_STATS_HISTORY_SIZE = 1
    (error,) = check_history()
    assert error.id == "django_creator_cache.E040"
    assert "CACHE_STATS_HISTORY_SIZE" in error.msg


def test_errors_are_scrubbed_of_passwords() -> None:
    from types import SimpleNamespace

    from django_creator_cache.backend.options import resolve
    from django_creator_cache.views.admin import scrub

    fake: Any = SimpleNamespace(options=resolve("redis://:p%40ss@h:1/0", {"PASSWORD": "opt-pw"}))
    assert scrub("a p@ss b p%40ss c opt-pw d", fake) == "a *** b *** c *** d"
    assert scrub(None, fake) is None
