"""``SESSION_ENGINE = "django_creator_cache.sessions"`` on real servers, all three modes."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import pytest
import redis.connection
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import UpdateError
from django.test import Client

from django_creator_cache.managers import managers
from django_creator_cache.managers.sessions import session_name
from django_creator_cache.sessions import SessionStore
from tests.conftest import Target


@pytest.fixture(autouse=True)
def engine(target: Target, settings: Any) -> None:
    settings.SESSION_ENGINE = "django_creator_cache.sessions"
    settings.SESSION_CACHE_ALIAS = "default"


def test_save_load_exists_delete(cache: Any) -> None:
    store = SessionStore()
    store["cart"] = [1, 2]
    store.save()
    key = store.session_key
    assert key is not None and store.exists(key)
    again = SessionStore(key)
    assert again["cart"] == [1, 2]
    again["cart"] = [3]
    again.save()
    assert SessionStore(key)["cart"] == [3]
    again.delete()
    assert not store.exists(key)
    assert SessionStore(key).load() == {}  # gone: an empty session, not an error
    assert SessionStore("no-such-key-0123456789abcdef").load() == {}


def test_update_of_a_deleted_session_raises_update_error(cache: Any) -> None:
    store = SessionStore()
    store["a"] = 1
    store.save()
    SessionStore(store.session_key).delete()
    store["a"] = 2
    with pytest.raises(UpdateError):  # SessionMiddleware turns this into SessionInterrupted
        store.save()


def test_sessions_live_for_the_session_ttl_policy(cache: Any, settings: Any) -> None:
    settings.CACHE_TTL_SESSION = 1234
    store = SessionStore()
    store["a"] = 1
    store.save()
    entry = managers().sessions._store.entry_key(session_name(store.session_key))
    assert 1_229_000 < cache.get_client().pttl(entry) <= 1_234_000
    assert store.get_expiry_age() == 1234
    store.set_expiry(60)  # a per-session expiry still wins
    store.save()
    assert 55_000 < cache.get_client().pttl(entry) <= 60_000


def test_no_session_key_is_stored_in_clear(cache: Any) -> None:
    """A session key is a bearer credential: anyone who can list keys (the admin's key
    browser) or read the user index could replay it as a cookie. Only its SHA-256 is
    stored."""
    store = SessionStore()
    store[SESSION_KEY] = "12"
    store.save()
    key = str(store.session_key)
    raw = cache.get_client()
    nodes = [n.redis_connection for n in raw.get_primaries()] if cache.cluster else [raw]
    held = [(node, name) for node in nodes for name in node.keys("*")]
    assert held and not any(key.encode() in name for _, name in held)
    members = [
        m for node, name in held if node.type(name) == b"zset" for m in node.zrange(name, 0, -1)
    ]
    assert session_name(key).encode() in members and key.encode() not in members
    assert SessionStore(key)[SESSION_KEY] == "12"  # found by its key all the same


def test_cycle_key_and_flush_keep_the_user_index_true(cache: Any) -> None:
    store = SessionStore()
    store[SESSION_KEY] = "5"
    store.save()
    first = store.session_key
    assert SessionStore.user_session_keys(5) == [session_name(first)]
    store.cycle_key()
    assert store.session_key != first
    assert SessionStore.user_session_keys(5) == [session_name(store.session_key)]
    store.flush()  # logout
    assert SessionStore.user_session_keys(5) == []


@pytest.mark.django_db
def test_log_out_this_user_everywhere(cache: Any) -> None:
    user = User.objects.create_user("ada")
    other = User.objects.create_user("bob")
    laptop, phone, bobs = Client(), Client(), Client()
    laptop.force_login(user)
    phone.force_login(user)
    bobs.force_login(other)
    keys = sorted(SessionStore.user_session_keys(user.pk))
    assert keys == sorted(session_name(c.session.session_key) for c in (laptop, phone))
    assert laptop.session[SESSION_KEY] == str(user.pk)

    assert SessionStore.delete_user_sessions(user.pk) == 2
    assert SESSION_KEY not in laptop.session and SESSION_KEY not in phone.session
    assert bobs.session[SESSION_KEY] == str(other.pk)
    assert SessionStore.user_session_keys(user.pk) == []


def test_expired_sessions_leave_the_index(cache: Any) -> None:
    store = SessionStore()
    store[SESSION_KEY] = "8"
    store.set_expiry(1)
    store.save()
    keeper = SessionStore()
    keeper[SESSION_KEY] = "8"
    keeper.save()
    assert len(SessionStore.user_session_keys(8)) == 2
    time.sleep(1.1)
    assert SessionStore.user_session_keys(8) == [session_name(keeper.session_key)]
    SessionStore.clear_expired()  # a no-op: nothing to sweep


@pytest.mark.parametrize(
    "past", [-1, datetime.timedelta(seconds=-10)], ids=["seconds", "timedelta"]
)
def test_a_session_saved_with_its_expiry_past_is_gone(cache: Any, past: Any) -> None:
    """``set_expiry`` in the past, then ``save``: the session is deleted (as Django's
    cache engine does), not kept with its old data and life, nor a 500."""
    store = SessionStore()
    store["cart"] = "old"
    store[SESSION_KEY] = "9"
    store.save()
    key = store.session_key
    store["cart"] = "new"
    store.set_expiry(past)
    store.save()
    assert SessionStore().exists(key) is False
    assert SessionStore(key).load() == {}
    assert SessionStore.user_session_keys(9) == []


def test_async_session_methods(cache: Any) -> None:
    async def scenario() -> None:
        store = SessionStore()
        await store.aset("n", 1)
        await store.asave()
        key = store.session_key
        assert key is not None and await store.aexists(key)
        loaded = SessionStore(key)
        assert await loaded.aget("n") == 1
        await loaded.adelete()
        assert not await store.aexists(key)

    asyncio.run(scenario())


def test_loading_a_users_session_checks_the_epoch_in_one_round_trip(
    cache: Any, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One script on a single server and Sentinel; the session and the epoch key live in
    two slots on a Cluster: two round trips there."""
    store = SessionStore()
    store[SESSION_KEY] = "11"
    store.save()
    key = store.session_key
    assert SessionStore(key)[SESSION_KEY] == "11"  # loads the script
    sends = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(conn: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        original(conn, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert SessionStore(key)[SESSION_KEY] == "11"
    assert sends[0] == (2 if target.mode == "cluster" else 1)
    monkeypatch.undo()
    SessionStore.delete_user_sessions(11)
    assert SessionStore(key).load() == {}  # and the check is real
