"""The admin key browser in headless Chromium (Playwright on Django's live server, Debian's
chromium, a real redis-server): browse, open a key, change its TTL, delete it. Screenshots go
to ``artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.cache import caches
from playwright.sync_api import BrowserContext

from django_creator_cache import history
from tests import test_browser_admin as harness
from tests.conftest import single_entry
from tests.redis_servers import RedisServer
from tests.test_admin_page import PAGE, fresh
from tests.test_browser_admin import ARTIFACTS, _user, log_in
from tests.test_key_browser import with_values

# The live-server + Chromium harness of the stats page's browser tests, shared.
_async_unsafe_allowed = harness._async_unsafe_allowed
browser = harness.browser
context = harness.context
raw = harness.raw


@pytest.fixture
def site(
    redis_server: RedisServer, settings: Any, transactional_db: None, live_server: Any
) -> Iterator[Any]:
    settings.CACHES = {
        "default": {
            **single_entry(redis_server, COMPRESSOR="zlib", COMPRESS_MIN_LENGTH=10),
            "KEY_PREFIX": "site",
        }
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    history.reset()
    cache = caches["default"]
    fresh(cache)
    cache.set_many({f"campaigns:{i}": {"id": i, "title": f"Campaign {i}"} for i in range(120)})
    cache.set("users:7", {"name": "Ada", "bio": "<script>alert(1)</script>"}, timeout=None)
    yield cache
    history.reset()
    fresh(cache)


def test_browse_open_change_ttl_and_delete(
    site: Any, context: BrowserContext, live_server: Any, django_user_model: Any, raw: Any
) -> None:
    _user(django_user_model, "manager")
    with_values(django_user_model.objects.get(username="manager"))
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server, "manager")
    ARTIFACTS.mkdir(exist_ok=True)

    # from the stats page to the browser
    page.click("#cache-default a.dcc-browse")
    assert page.url == f"{live_server.url}{PAGE}default/keys/"
    rows = page.locator("tr.dcc-key-row")
    first = rows.count()
    assert 40 <= first < 122  # one bounded page, not every key
    page.screenshot(path=str(ARTIFACTS / "admin_key_browser.png"), full_page=True)
    page.click("a.dcc-next")
    assert "cursor=" in page.url
    assert page.locator("tr.dcc-key-row").count() > 0

    # search, then open a key
    page.goto(f"{live_server.url}{PAGE}default/keys/")
    page.fill("#dcc-pattern", "1:users:*")
    page.click(".dcc-search button")
    assert page.locator("tr.dcc-key-row").count() == 1
    page.click("tr[data-key='site:1:users:7'] a")
    assert page.locator(".dcc-key-name").inner_text() == "site:1:users:7"
    assert page.locator("[data-field=ttl]").inner_text() == "no expiry"
    assert "zlib compression" in page.locator("[data-field=format]").inner_text()
    assert raw.get("site:1:users:7")[:1] == b"x"  # stored compressed
    shown = page.locator("pre.dcc-value-text").inner_text()
    assert "'name': 'Ada'" in shown
    assert "<script>alert(1)</script>" in shown  # shown as text: it never ran
    assert dialogs == []
    assert page.locator("pre.dcc-value-text script").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin_key_detail.png"), full_page=True)

    # change its TTL
    page.fill("#id_seconds", "3600")
    page.click(".dcc-expire button")
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").inner_text() == (
        "Set the TTL of key 'site:1:users:7' of cache 'default' to 3600 s."
    )
    assert page.locator("[data-field=ttl]").inner_text() in ("59 min 59 s", "1 h 0 min")
    assert 3590 <= raw.ttl("site:1:users:7") <= 3600
    page.screenshot(path=str(ARTIFACTS / "admin_key_ttl_changed.png"), full_page=True)

    # delete it
    page.click(".dcc-delete button")
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}{PAGE}default/keys/"
    assert page.locator(".messagelist .success").inner_text() == (
        "Deleted key 'site:1:users:7' of cache 'default'."
    )
    assert raw.exists("site:1:users:7") == 0
    assert page.locator("tr[data-key='site:1:users:7']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin_key_deleted.png"), full_page=True)
    messages = [e.get_change_message() for e in LogEntry.objects.order_by("action_time")]
    assert [e.user.get_username() for e in LogEntry.objects.all()] == ["manager", "manager"]
    assert messages[-1] == "Deleted key 'site:1:users:7' of cache 'default'."


def test_staff_without_value_permission_sees_no_value(
    site: Any, context: BrowserContext, live_server: Any, django_user_model: Any
) -> None:
    _user(django_user_model, "keysonly")
    page = context.new_page()
    log_in(page, live_server, "keysonly")
    page.goto(f"{live_server.url}{PAGE}default/keys/key/?key=site:1:users:7")
    assert page.locator("[data-field=type]").inner_text() == "string"
    assert "Values are hidden" in page.locator(".dcc-value-box").inner_text()
    assert "Ada" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "admin_key_value_hidden.png"), full_page=True)
