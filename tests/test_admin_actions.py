"""The stats page's actions: confirmation, CSRF, permission, logging, refusals, outages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.core.cache import caches
from django.test import Client

from tests.conftest import single_entry
from tests.redis_servers import RedisServer
from tests.test_admin_page import PAGE, fresh, make_user

PREFIX_URL = f"{PAGE}default/invalidate-prefix/"
TAG_URL = f"{PAGE}default/invalidate-tag/"
CLEAR_URL = f"{PAGE}default/clear/"
SURE = "Yes, I\N{RIGHT SINGLE QUOTATION MARK}m sure"


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
def raw(redis_server: RedisServer) -> Iterator[Any]:
    with redis_server.client() as client:
        yield client


def _entry(server: RedisServer, key_prefix: str) -> dict[str, Any]:
    return {
        **single_entry(server, INVALIDATION_PREFIXES=["campaigns", "dashboard"]),
        "KEY_PREFIX": key_prefix,
    }


@pytest.fixture
def site_cache(redis_server: RedisServer, settings: Any, raw: Any) -> Iterator[Any]:
    """The default alias with KEY_PREFIX "site", and entries under two prefixes and a tag."""
    settings.CACHES = {"default": _entry(redis_server, "site")}
    cache = caches["default"]
    fresh(cache)
    cache.set_many({"campaigns:1": 1, "campaigns:2": 2, "dashboard:main": "d"})
    cache.set("tagged", "t")
    cache.set("flat", "f")
    yield cache
    raw.flushdb()


def _present(cache: Any, *keys: str) -> list[bool]:
    return [cache.has_key(key) for key in keys]


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_invalidate_prefix_confirm_then_post(
    site_cache: Any, manager: Client, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    confirm = manager.get(PREFIX_URL, {"prefix": "campaigns"})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Are you sure?" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert '<input type="hidden" name="prefix" value="campaigns">' in html
    assert "admin/base_site.html" in [t.name for t in confirm.templates]
    # the GET changed nothing
    assert _present(site_cache, "campaigns:1", "campaigns:2") == [True, True]

    caplog.set_level(logging.INFO, logger="django_creator_cache.admin")
    response = manager.post(PREFIX_URL, {"prefix": "campaigns"})
    assert response.status_code == 302
    assert response["Location"] == PAGE
    assert _messages(response) == [
        "Invalidated prefix 'campaigns' on cache 'default': 2 entries deleted."
    ]
    assert _present(site_cache, "campaigns:1", "campaigns:2", "dashboard:main") == [
        False,
        False,
        True,
    ]
    assert raw.exists("site:1:campaigns:1", "site:1:campaigns:2") == 0
    # logged with the user, in the log and in the admin's history
    (record,) = [r for r in caplog.records if r.name == "django_creator_cache.admin"]
    assert record.getMessage().startswith("manager (user id ")
    assert "Invalidated prefix 'campaigns'" in record.getMessage()
    entry = LogEntry.objects.get()
    assert entry.user.get_username() == "manager"
    assert entry.action_flag == CHANGE
    assert entry.object_id == "default"
    assert entry.content_type.app_label == "django_creator_cache"
    assert "2 entries deleted" in entry.get_change_message()
    # shown under "Recent actions" on the admin index, without a broken link
    index = manager.get("/admin/").content.decode()
    assert "default" in index.split("Recent actions", 1)[1]


def test_invalidate_tag(site_cache: Any, manager: Client) -> None:
    site_cache.set("campaign-list", [1, 2], tags=["campaign:7"])
    site_cache.set("other-list", [3], tags=["campaign:8"])
    html = manager.get(TAG_URL, {"tag": "campaign:7"}).content.decode()
    assert "Every entry written with the tag <code>campaign:7</code>" in html
    response = manager.post(TAG_URL, {"tag": "campaign:7"})
    assert response.status_code == 302
    assert _messages(response) == [
        "Invalidated tag 'campaign:7' on cache 'default': 1 entries deleted."
    ]
    assert _present(site_cache, "campaign-list", "other-list") == [False, True]
    assert LogEntry.objects.get().change_message.startswith("Invalidated tag 'campaign:7'")


def test_clear_deletes_only_this_alias(site_cache: Any, manager: Client, raw: Any) -> None:
    raw.set("someone-else:key", "keep")
    html = manager.get(CLEAR_URL).content.decode()
    assert "Every key under <code>site:</code> is deleted" in html
    assert f'value="{SURE}"' in html
    response = manager.post(CLEAR_URL)
    assert response.status_code == 302
    assert _messages(response) == ["Cleared cache 'default': every key under 'site:' was deleted."]
    assert raw.keys("site:*") == []
    assert raw.get("someone-else:key") == b"keep"
    assert LogEntry.objects.get().object_id == "default"


def test_clear_refused_without_key_prefix(
    redis_server: RedisServer, settings: Any, manager: Client, raw: Any
) -> None:
    settings.CACHES = {"default": _entry(redis_server, "")}
    raw.flushdb()
    raw.set("shared:data", "keep")
    cache = caches["default"]
    cache.set("campaigns:1", 1)

    page = manager.get(PAGE).content.decode()
    assert "Not available: this alias has no KEY_PREFIX" in page
    assert f'href="{CLEAR_URL}"' not in page
    confirm = manager.get(CLEAR_URL)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "has no KEY_PREFIX, so clearing it would empty the whole Redis database" in html
    assert SURE not in html
    assert "<form" not in html.split('id="content-main"', 1)[1]

    response = manager.post(CLEAR_URL)
    assert response.status_code == 302
    (message,) = _messages(response)
    assert "has no KEY_PREFIX" in message
    assert raw.get("shared:data") == b"keep"
    assert cache.get("campaigns:1") == 1
    assert LogEntry.objects.count() == 0
    raw.flushdb()


def test_actions_need_the_permission(
    site_cache: Any, plain_staff: Client, client: Client, django_user_model: Any
) -> None:
    for url, data in (
        (PREFIX_URL, {"prefix": "campaigns"}),
        (TAG_URL, {"tag": "x"}),
        (CLEAR_URL, {}),
    ):
        assert plain_staff.get(url, data).status_code == 403
        assert plain_staff.post(url, data).status_code == 403
        anonymous = client.post(url, data)
        assert anonymous.status_code == 302
        assert anonymous["Location"].startswith("/admin/login/")
        assert client.get(url, data).status_code == 302
    assert _present(site_cache, "campaigns:1", "campaigns:2", "flat") == [True, True, True]
    assert LogEntry.objects.count() == 0


def test_post_needs_csrf(site_cache: Any, db: None, django_user_model: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_user(django_user_model, "manager"))
    assert strict.post(PREFIX_URL, {"prefix": "campaigns"}).status_code == 403
    assert strict.post(CLEAR_URL).status_code == 403
    assert _present(site_cache, "campaigns:1", "flat") == [True, True]
    # with the token from the confirmation page it goes through
    confirm = strict.get(PREFIX_URL, {"prefix": "campaigns"})
    token = confirm.context["csrf_token"]
    response = strict.post(PREFIX_URL, {"prefix": "campaigns", "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert site_cache.has_key("campaigns:1") is False


def test_bad_input_shows_the_form_again(site_cache: Any, manager: Client) -> None:
    empty = manager.get(PREFIX_URL)
    assert empty.status_code == 200
    html = empty.content.decode()
    assert '<input type="text" name="prefix"' in html
    assert 'type="hidden" name="prefix"' not in html
    posted = manager.post(PREFIX_URL, {"prefix": "   "})
    assert posted.status_code == 200
    assert "This field is required." in posted.content.decode()
    # an empty part would widen the prefix: refused with the backend's explanation
    response = manager.post(PREFIX_URL, {"prefix": "a:b:"})
    assert response.status_code == 302
    (message,) = _messages(response)
    assert "has an empty part" in message
    assert LogEntry.objects.count() == 0


def test_untracked_prefix_is_flagged(site_cache: Any, manager: Client) -> None:
    # Every write is indexed now (unless OPTIONS["TRACK_WRITES"] is False): no prefix
    # needs declaring, so none is flagged.
    html = manager.get(PREFIX_URL, {"prefix": "nobody-tracks-this"}).content.decode()
    assert "does not track" not in html
    html = manager.get(PREFIX_URL, {"prefix": "campaigns"}).content.decode()
    assert "does not track" not in html


def test_unknown_alias_or_action(site_cache: Any, manager: Client) -> None:
    assert manager.get(f"{PAGE}nope/invalidate-prefix/").status_code == 404
    assert manager.get(f"{PAGE}default/flushall/").status_code == 404
    assert manager.post(f"{PAGE}default/flushall/").status_code == 404
    assert manager.put(PREFIX_URL, {"prefix": "campaigns"}).status_code == 405
    assert site_cache.has_key("campaigns:1") is True


def test_actions_with_the_server_stopped(
    own_redis_server: RedisServer, settings: Any, manager: Client
) -> None:
    settings.CACHES = {
        "default": {**single_entry(own_redis_server, RETRY_DELAY=0.005), "KEY_PREFIX": "site"}
    }
    settings.CACHE_HEALTH_RETRIES = 0
    caches["default"].set("campaigns:1", 1)
    own_redis_server.stop()
    for url, data in (
        (PREFIX_URL, {"prefix": "campaigns"}),
        (TAG_URL, {"tag": "x"}),
        (CLEAR_URL, {}),
    ):
        assert manager.get(url, data).status_code == 200
        response = manager.post(url, data)
        assert response.status_code == 302
        (message,) = _messages(response)
        assert message.startswith("Cache 'default' is unavailable (")
        assert message.endswith("): nothing was done.")
    assert LogEntry.objects.count() == 0
    own_redis_server.start()
    assert caches["default"].get("campaigns:1") is None  # a restarted server is empty
