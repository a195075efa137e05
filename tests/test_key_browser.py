"""The admin key browser on real redis-servers: paging (single and Cluster), decoding,
escaping, truncation, the value permission, CSRF, changes and their log, signed values."""

from __future__ import annotations

import asyncio
import builtins
import html as html_lib
import logging
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.test import Client

from django_creator_cache.backend.ops import browse
from tests.conftest import cluster_entry, flush, single_entry
from tests.redis_servers import RedisCluster, RedisServer
from tests.test_admin_page import PAGE, make_user

KEYS = f"{PAGE}default/keys/"
KEY = f"{KEYS}key/"
PASSWORD = "s3cret-browser"


def with_values(user: Any) -> Any:
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_cache_values", content_type__app_label="django_creator_cache"
        )
    )
    return user


@pytest.fixture
def manager(db: None, django_user_model: Any) -> Client:
    """Staff with both permissions: keys and values."""
    client = Client()
    client.force_login(with_values(make_user(django_user_model, "manager")))
    return client


@pytest.fixture
def keys_only(db: None, django_user_model: Any) -> Client:
    """Staff with ``manage_cache`` but not ``view_cache_values``."""
    client = Client()
    client.force_login(make_user(django_user_model, "keysonly"))
    return client


def configure(settings: Any, entry: dict[str, Any], **options: Any) -> Any:
    settings.CACHES = {
        "default": {**entry, "KEY_PREFIX": "site", "OPTIONS": {**entry["OPTIONS"], **options}}
    }
    cache = caches["default"]
    flush(cache)
    return cache


@pytest.fixture
def site(redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    cache = configure(settings, single_entry(redis_server))
    yield cache
    flush(cache)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[Any]:
    with redis_server.client() as client:
        yield client


def page_keys(html: str) -> list[str]:
    return [
        html_lib.unescape(k) for k in re.findall(r'class="dcc-key-row" data-key="([^"]*)"', html)
    ]


def next_link(html: str) -> str | None:
    match = re.search(r'class="button dcc-next" href="([^"]+)"', html)
    return html_lib.unescape(match.group(1)) if match else None


def detail(client: Client, key: str) -> str:
    response = client.get(KEY, {"key": key})
    assert response.status_code == 200
    return response.content.decode()


def value_text(html: str) -> str:
    match = re.search(r'<pre class="dcc-value-text">(.*?)</pre>', html, re.S)
    assert match, "no value shown"
    return match.group(1)


def walk(cache: Any, count: int, pattern: str = "*") -> list[list[str]]:
    """Every page of the op, first to last."""
    pages, cursor = [], ""
    while True:
        page = cache.browse_keys(pattern, cursor, count)
        assert page.available
        pages.append([info.key for info in page.keys])
        cursor = page.cursor
        if not cursor:
            return pages
        assert len(pages) < 1000, "the cursor never ended"


def test_pages_cover_every_key_once_single(site: Any, manager: Client, raw: Any) -> None:
    site.set_many({f"item:{i}": i for i in range(237)})
    raw.set("other:1:item:1", b"x")  # another alias's key on the same server: never shown
    raw.set("site-not:1:x", b"x")
    expected = {f"site:1:item:{i}" for i in range(237)}

    pages = walk(site, 20)
    found = [key for page in pages for key in page]
    assert len(found) == len(set(found)) == 237
    assert set(found) == expected
    assert len(pages) >= 237 // 40  # bounded pages, not one big one
    # A page stops at the SCAN reply that fills it: SCAN's COUNT is a hint (one reply can
    # bring more while Redis resizes its table), so a page may pass ``count`` by a reply.
    assert max(len(page) for page in pages) < 237 // 2

    # the same through the admin pages and their "Next page" links
    seen: list[str] = []
    url: str | None = KEYS
    pages_seen = 0
    while url:
        response = manager.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        seen += page_keys(html)
        url = next_link(html)
        pages_seen += 1
        assert pages_seen < 100
    assert len(seen) == len(set(seen)) == 237 and set(seen) == expected
    assert pages_seen >= 237 // (2 * browse.PAGE_SIZE)
    assert "No more keys." in html

    # a pattern, matched after the alias's prefix
    html = manager.get(KEYS, {"pattern": "1:item:1?"}).content.decode()
    assert set(page_keys(html)) == {f"site:1:item:{i}" for i in range(10, 20)}


def test_pages_cover_every_cluster_primary_once(
    redis_cluster: RedisCluster, settings: Any, manager: Client
) -> None:
    cache = configure(settings, cluster_entry(redis_cluster))
    try:
        cache.set_many({f"item:{i}": i for i in range(300)})
        client = cache.get_client()
        primaries = client.get_primaries()
        per_node = {
            # the user keys (not the invalidation index the writes keep under site:dcc:)
            node.name: {k.decode() for k in client.scan_iter(match="site:1:*", target_nodes=node)}
            for node in primaries
        }
        assert len(per_node) == 3 and all(per_node.values())  # keys on every primary
        expected = set().union(*per_node.values())
        assert len(expected) == 300

        pages = walk(cache, 25)
        found = [key for page in pages for key in page]
        assert len(found) == len(set(found)) == 300 and set(found) == expected
        # every primary's keys were walked, in order: each page holds one or two nodes' keys
        for keys in per_node.values():
            assert keys <= set(found)

        # the async twin walks the same
        async def awalk() -> list[str]:
            keys, cursor = [], ""
            while True:
                page = await cache.abrowse_keys("*", cursor, 40)
                keys += [info.key for info in page.keys]
                cursor = page.cursor
                if not cursor:
                    return keys

        found = asyncio.run(awalk())
        assert len(found) == len(set(found)) == 300 and set(found) == expected

        seen: list[str] = []
        url: str | None = KEYS
        while url:
            html = manager.get(url).content.decode()
            seen += page_keys(html)
            url = next_link(html)
        assert len(seen) == len(set(seen)) == 300 and set(seen) == expected
        html = detail(manager, "site:1:item:7")
        assert value_text(html) == "7"
    finally:
        flush(cache)


def test_page_shows_type_ttl_and_size(site: Any, manager: Client, raw: Any) -> None:
    site.set("short", "v", timeout=90)
    site.set("forever", "v", timeout=None)
    raw.hset("site:1:h", mapping={"a": "1", "b": "2"})
    html = manager.get(KEYS).content.decode()
    rows = {
        key: (kind, ttl, size)
        for key, kind, ttl, size in re.findall(
            r'data-key="([^"]*)">.*?<td>(\w+)</td><td data-field="ttl">([^<]*)</td>'
            r'<td class="dcc-num">([^<]*)</td>',
            html,
            re.S,
        )
    }
    assert set(rows) == {"site:1:short", "site:1:forever", "site:1:h"}
    assert rows["site:1:h"][0] == "hash"
    assert rows["site:1:forever"][:2] == ("string", "no expiry")
    assert re.fullmatch(r"1 min (2\d|30) s", rows["site:1:short"][1])
    assert re.fullmatch(r"\d+\xa0bytes", rows["site:1:short"][2])

    html = detail(manager, "site:1:h")
    assert '<td data-field="type">hash</td>' in html
    assert '<td data-field="length">2</td>' in html
    assert "<code>a</code>" in html and "<code>b</code>" in html


@pytest.mark.parametrize(
    ("serializer", "compressor"),
    [("pickle", None), ("json", None), ("msgpack", None), ("pickle", "zlib"), ("json", "zlib")],
)
def test_values_are_decoded(
    redis_server: RedisServer,
    settings: Any,
    manager: Client,
    raw: Any,
    serializer: str,
    compressor: str | None,
) -> None:
    options: dict[str, Any] = {"SERIALIZER": serializer}
    if compressor:
        options.update(COMPRESSOR=compressor, COMPRESS_MIN_LENGTH=10)
    cache = configure(settings, single_entry(redis_server), **options)
    try:
        value = {"name": "Ada Lovelace", "langs": ["en", "fr"], "born": 1815}
        cache.set("person", value)
        stored = raw.get("site:1:person")
        if compressor:
            assert stored[:1] == b"x"  # a zlib stream, not the serializer's bytes
        html = detail(manager, "site:1:person")
        shown = html_lib.unescape(value_text(html))
        assert "'name': 'Ada Lovelace'" in shown
        assert "'langs': ['en', 'fr']" in shown
        assert "'born': 1815" in shown
        assert "unsigned" in html
        cache.set("count", 42)  # a plain Redis integer
        assert value_text(detail(manager, "site:1:count")) == "42"
    finally:
        flush(cache)


def test_value_is_escaped_and_truncated(site: Any, manager: Client) -> None:
    site.set("xss", "<script>alert('x')</script>")
    html = detail(manager, "site:1:xss")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in value_text(html)

    site.set("<b>bold</b>", 1)  # a key name is escaped too, on both pages
    listing = manager.get(KEYS).content.decode()
    assert "<b>bold</b>" not in listing and "&lt;b&gt;bold&lt;/b&gt;" in listing
    assert "<b>bold</b>" not in detail(manager, "site:1:<b>bold</b>")

    site.set("long", "ab" * 10_000)
    html = detail(manager, "site:1:long")
    shown = value_text(html)
    assert shown == "ab" * 2000 + "…"
    assert "decoded: str · truncated" in html
    assert '<td data-field="length">' in html


def test_values_need_their_own_permission(
    site: Any, manager: Client, keys_only: Client, redis_server: RedisServer, db: None
) -> None:
    site.set("profile", {"email": "ada@example.com"})
    site.get_client().hset("site:1:h", "field", "secret-in-hash")
    assert "ada@example.com" in detail(manager, "site:1:profile")

    reads_before = redis_server.commandstats()
    html = detail(keys_only, "site:1:profile")
    reads_after = redis_server.commandstats()
    assert "ada@example.com" not in html
    assert "Values are hidden" in html
    assert '<td data-field="type">string</td>' in html  # the facts are still shown
    for command in ("getrange", "get", "hscan"):  # not even read
        assert reads_after.get(command, 0) == reads_before.get(command, 0)
    html = detail(keys_only, "site:1:h")
    assert "secret-in-hash" not in html and "Values are hidden" in html
    assert "site:1:profile" in keys_only.get(KEYS).content.decode()


def test_keys_need_staff_and_manage_cache(site: Any, django_user_model: Any, db: None) -> None:
    site.set("k", "v")
    staff = Client()
    staff.force_login(with_values(make_user(django_user_model, "s", perm=False)))
    assert staff.get(KEYS).status_code == 403
    assert staff.get(KEY, {"key": "site:1:k"}).status_code == 403
    assert staff.post(f"{KEYS}delete/", {"key": "site:1:k"}).status_code == 403
    anonymous = Client()
    assert anonymous.get(KEYS).status_code == 302
    assert anonymous.post(f"{KEYS}delete/", {"key": "site:1:k"}).status_code == 302
    assert site.get("k") == "v"


def test_changes_refused_without_csrf_token(site: Any, django_user_model: Any, db: None) -> None:
    site.set("k", "v", timeout=None)
    client = Client(enforce_csrf_checks=True)
    client.force_login(with_values(make_user(django_user_model, "csrf")))
    for change, data in (("delete", {}), ("expire", {"seconds": "5"})):
        response = client.post(f"{KEYS}{change}/", {"key": "site:1:k", **data})
        assert response.status_code == 403
        assert b"CSRF" in response.content
    assert site.get("k") == "v" and site.ttl("k") is None
    # the page's own forms carry the token, and with it the same POST goes through
    html = client.get(KEY, {"key": "site:1:k"}).content.decode()
    form = html.split('class="dcc-action dcc-delete"', 1)[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token
    response = client.post(
        f"{KEYS}delete/", {"key": "site:1:k", "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302 and site.get("k") is None


def test_delete_and_ttl_change_are_logged(
    site: Any, manager: Client, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    site.set("doomed", "v")
    site.set("kept", "v", timeout=None)
    caplog.set_level(logging.INFO, logger="django_creator_cache")

    assert manager.get(f"{KEYS}delete/", {"key": "site:1:doomed"}).status_code == 405
    response = manager.post(f"{KEYS}expire/", {"key": "site:1:kept", "seconds": "100"})
    assert response.status_code == 302
    assert response["Location"] == f"{KEY}?{urlencode({'key': 'site:1:kept'})}"
    assert 95 <= raw.ttl("site:1:kept") <= 100
    response = manager.post(f"{KEYS}expire/", {"key": "site:1:kept", "seconds": ""})
    assert raw.ttl("site:1:kept") == -1  # no expiry again

    response = manager.post(f"{KEYS}delete/", {"key": "site:1:doomed"})
    assert response.status_code == 302 and response["Location"] == KEYS
    assert raw.exists("site:1:doomed") == 0
    follow = manager.get(KEYS).content.decode()
    assert "Deleted key &#x27;site:1:doomed&#x27; of cache &#x27;default&#x27;." in follow

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("django_creator_cache")]
    assert any(
        m.startswith("manager (user id ")
        and m.endswith("Set the TTL of key 'site:1:kept' of cache 'default' to 100 s.")
        for m in lines
    )
    assert any("no expiry" in m and m.startswith("manager ") for m in lines)
    assert any(
        m.startswith("manager ") and m.endswith("Deleted key 'site:1:doomed' of cache 'default'.")
        for m in lines
    )
    entries = list(LogEntry.objects.order_by("action_time"))
    assert [e.user.get_username() for e in entries] == ["manager"] * 3
    assert "Deleted key 'site:1:doomed'" in entries[-1].get_change_message()

    # a key of another alias is refused, and nothing is logged for it
    raw.set("other:1:k", b"v")
    response = manager.post(f"{KEYS}delete/", {"key": "other:1:k"})
    assert raw.exists("other:1:k") == 1
    assert LogEntry.objects.count() == 3
    assert manager.get(KEY, {"key": "other:1:k"}).status_code == 404
    # a key that is gone: nothing done, nothing logged
    manager.post(f"{KEYS}delete/", {"key": "site:1:doomed"})
    assert LogEntry.objects.count() == 3


class Planted:
    """Unpickling this creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.path), "w"))


def test_signed_alias_refuses_a_planted_pickle(
    redis_server: RedisServer, settings: Any, manager: Client, raw: Any, tmp_path: Path
) -> None:
    cache = configure(settings, single_entry(redis_server), SIGNED=True)
    try:
        cache.set("mine", {"ok": True})
        html = detail(manager, "site:1:mine")
        assert "&#x27;ok&#x27;: True" in value_text(html)
        assert "signed" in html and "unsigned" not in html

        planted = tmp_path / "pwned"
        raw.set("site:1:planted", pickle.dumps(Planted(planted)))
        html = detail(manager, "site:1:planted")
        assert "refused (not signed by this site)" in html
        assert not planted.exists()
        assert "site:1:planted" in manager.get(KEYS).content.decode()  # listed, not read
        assert not planted.exists()
        assert raw.exists("site:1:planted") == 1  # the browser only looks

        # the control: an alias without signing unpickles what it reads (as ``get`` does)
        cache = configure(settings, single_entry(redis_server))
        raw.set("site:1:planted", pickle.dumps(Planted(planted)))
        detail(manager, "site:1:planted")
        assert planted.exists()
    finally:
        flush(cache)


def test_no_secret_on_the_pages_and_outages_answer(
    settings: Any, manager: Client, own_redis_server: RedisServer
) -> None:
    with own_redis_server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    port = own_redis_server.port
    settings.CACHES = {
        "default": {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
            "KEY_PREFIX": "site",
        }
    }
    cache = caches["default"]
    cache.set("k", "v")
    pages = [manager.get(KEYS), manager.get(KEY, {"key": "site:1:k"})]
    assert all(p.status_code == 200 for p in pages)
    assert "site:1:k" in pages[0].content.decode()
    assert "&#x27;v&#x27;" not in pages[1].content.decode()  # a str is shown as itself
    assert value_text(pages[1].content.decode()) == "v"

    own_redis_server.stop()
    pages += [manager.get(KEYS), manager.get(KEY, {"key": "site:1:k"})]
    assert all(p.status_code == 200 for p in pages)
    assert "Redis did not answer" in pages[2].content.decode()
    assert "Redis did not answer" in pages[3].content.decode()
    response = manager.post(f"{KEYS}delete/", {"key": "site:1:k"})
    assert response.status_code == 302
    for page in [*pages, manager.get(urlsplit(response["Location"]).path)]:
        assert PASSWORD not in page.content.decode()


def test_pages_cover_every_key_once_on_every_topology(cache: Any) -> None:
    """Single server, Sentinel and Cluster (no KEY_PREFIX: the whole database is the alias's)."""
    cache.set_many({f"t:{i}": i for i in range(130)})
    expected = {cache.make_key(f"t:{i}") for i in range(130)}
    pages = walk(cache, 20)
    found = [key for page in pages for key in page]
    assert len(found) == len(set(found))
    assert {k for k in found if ":t:" in k} == expected
    assert len(pages) >= 4


def test_a_sparse_pattern_pages_within_the_bound(site: Any) -> None:
    """Each page makes at most ``SCAN_CALLS`` SCAN calls: a rare match takes several pages."""
    site.set_many({f"hay:{i}": i for i in range(1500)})
    site.set("needle", 1)
    pages = walk(site, 5, "1:needle")
    assert len(pages) >= 2  # the first page stopped at its bound, with a cursor
    assert [key for page in pages for key in page] == ["site:1:needle"]


def test_a_forged_cursor_starts_again(site: Any, manager: Client) -> None:
    site.set_many({f"k:{i}": i for i in range(5)})
    for cursor in ("-5", "x/abc", str(2**70), "nowhere:1/3"):
        html = manager.get(KEYS, {"cursor": cursor}).content.decode()
        assert "Redis did not answer" not in html
        if cursor == "nowhere:1/3":  # a node that is not a primary: from the first one
            assert len(page_keys(html)) == 5
    with pytest.raises(ValueError, match="not a key browser cursor"):
        site.browse_keys("*", "-5")
