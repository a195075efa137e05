"""The admin stats page in a real browser: headless Chromium (Playwright) on Django's live server,
with the cache on a real redis-server.

Debian's ``chromium`` is driven (``scripts/test.sh`` installs it); Playwright's own browser
download is never used. A screenshot of the page goes to ``artifacts/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from django_creator_cache import history
from tests.conftest import single_entry
from tests.redis_servers import RedisServer
from tests.test_admin_page import PAGE, fresh, make_user

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SURE = "Yes, I\N{RIGHT SINGLE QUOTATION MARK}m sure"
FULL_KEYS = ("site:1:campaigns:1", "site:1:campaigns:2", "site:1:campaigns:3")


@pytest.fixture(scope="module", autouse=True)
def _async_unsafe_allowed() -> Iterator[None]:
    """Playwright's sync API runs an event loop in this thread; the ORM refuses to run
    beside one unless allowed. Allowed for this module only."""
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if saved is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[Any]:
    with redis_server.client() as client:
        yield client


@pytest.fixture
def site(
    redis_server: RedisServer, settings: Any, transactional_db: None, live_server: Any
) -> Iterator[Any]:
    """The default alias on the shared redis-server, seen by the live server's threads too."""
    settings.CACHES = {
        "default": {
            **single_entry(redis_server, INVALIDATION_PREFIXES=["campaigns"]),
            "KEY_PREFIX": "site",
        }
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    history.reset()
    cache = caches["default"]
    fresh(cache)
    cache.set_many({"campaigns:1": 1, "campaigns:2": 2, "campaigns:3": 3})
    cache.set("dashboard:main", "<html>")
    cache.set("users:7", {"name": "Ada"})
    yield cache
    history.reset()
    fresh(cache)


def log_in(page: Page, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={PAGE}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_load_state()


def _user(django_user_model: Any, name: str, **kwargs: Any) -> None:
    user = make_user(django_user_model, name, **kwargs)
    user.set_password("pw")
    user.save()


def _seed_last_hour(cache: Any) -> None:
    """Samples as the flushers would have left them over the last 45 minutes."""
    now = time.time()
    hits = misses = sets = 0
    for minute in range(45, 0, -1):
        busy = 300 + (minute * 37) % 250
        rate = 0.72 + ((minute * 13) % 20) / 100
        hits += int(busy * rate)
        misses += busy - int(busy * rate)
        sets += busy // 6
        history.append(cache, history.Sample(now - minute * 60, hits, misses, sets, 0, 0))


def test_manager_sees_stats_and_invalidates_a_prefix(
    site: Any, context: BrowserContext, live_server: Any, django_user_model: Any, raw: Any
) -> None:
    _user(django_user_model, "manager")
    cache = site
    for _ in range(4):
        assert cache.get("campaigns:1") == 1
    assert cache.get("campaigns:404") is None
    _seed_last_hour(cache)

    page = context.new_page()
    log_in(page, live_server, "manager")
    assert page.url == f"{live_server.url}{PAGE}"
    assert page.title().startswith("Cache statistics")
    section = page.locator("#cache-default")
    assert int(section.locator('[data-field="hits"]').inner_text()) >= 4
    assert section.locator('[data-field="availability"]').inner_text() == "available"
    assert section.locator('[data-field="mode"]').inner_text() == "Single server"
    assert section.locator("tr[data-prefix=campaigns] td.dcc-num").inner_text() == "3"
    assert section.locator("svg.dcc-chart rect.dcc-bar").count() >= 40
    # the admin's own look: its stylesheet and ours, served from static files
    styles = page.eval_on_selector_all("link[rel=stylesheet]", "els => els.map(e => e.href)")
    assert any(s.endswith("/static/admin/css/base.css") for s in styles)
    assert any(s.endswith("/static/django_creator_cache/admin.css") for s in styles)
    assert page.locator("#site-name").count() == 1  # admin header
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin_cache_stats.png"), full_page=True)

    # the index links the page
    page.goto(f"{live_server.url}/admin/")
    page.click("text=Cache statistics")
    assert page.url == f"{live_server.url}{PAGE}"

    # invalidate a prefix, through the confirmation page
    page.fill("#prefix-default", "campaigns")
    page.click("#cache-default button:has-text('Invalidate prefix')")
    assert "/default/invalidate-prefix/?prefix=campaigns" in page.url
    assert page.locator("#content-main").inner_text().count("Are you sure?") == 1
    assert raw.exists(*FULL_KEYS) == 3  # nothing happened yet
    page.screenshot(path=str(ARTIFACTS / "admin_cache_confirm.png"))
    page.click(f"input[type=submit][value='{SURE}']")
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}{PAGE}"
    assert page.locator(".messagelist .success").inner_text() == (
        "Invalidated prefix 'campaigns' on cache 'default': 3 entries deleted."
    )
    assert raw.exists(*FULL_KEYS) == 0
    assert raw.exists("site:1:dashboard:main", "site:1:users:7") == 2
    assert page.locator("#cache-default tr[data-prefix=campaigns]").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin_cache_invalidated.png"))


def _csrf_token(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")


def test_staff_without_permission_is_refused(
    site: Any, context: BrowserContext, live_server: Any, django_user_model: Any, raw: Any
) -> None:
    _user(django_user_model, "staff", perm=False)
    page = context.new_page()
    log_in(page, live_server, "staff")
    response = page.goto(f"{live_server.url}{PAGE}")
    assert response is not None and response.status == 403
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("#content-main").inner_text().count("Cache statistics") == 0
    confirm = page.goto(f"{live_server.url}{PAGE}default/invalidate-prefix/?prefix=campaigns")
    assert confirm is not None and confirm.status == 403

    token = _csrf_token(context)
    for action, data in (("invalidate-prefix", {"prefix": "campaigns"}), ("clear", {})):
        posted = context.request.post(
            f"{live_server.url}{PAGE}default/{action}/",
            form={"csrfmiddlewaretoken": token, **data},
            max_redirects=0,
        )
        assert posted.status == 403
        assert "CSRF" not in posted.text()  # refused for the permission, not the token
    assert raw.exists(*FULL_KEYS) == 3
    assert site.get("users:7") == {"name": "Ada"}


def test_anonymous_visitor_is_sent_to_login(
    site: Any, context: BrowserContext, live_server: Any, raw: Any
) -> None:
    page = context.new_page()
    page.goto(f"{live_server.url}{PAGE}")
    assert page.url.startswith(f"{live_server.url}/admin/login/?next=")
    assert page.locator("#id_username").count() == 1
    page.goto(f"{live_server.url}{PAGE}default/clear/")
    assert page.url.startswith(f"{live_server.url}/admin/login/")

    token = _csrf_token(context)  # set by the login page
    for action, data in (("invalidate-prefix", {"prefix": "campaigns"}), ("clear", {})):
        posted = context.request.post(
            f"{live_server.url}{PAGE}default/{action}/",
            form={"csrfmiddlewaretoken": token, **data},
            max_redirects=0,
        )
        assert posted.status == 302
        assert posted.headers["location"].startswith("/admin/login/")
    assert raw.exists(*FULL_KEYS) == 3
    assert raw.exists("site:1:dashboard:main", "site:1:users:7") == 2
