"""Sessions fail closed: logout during a stalled Redis, and log-out-everywhere racing logins.

Real redis-server processes: a server of the test's own frozen with SIGSTOP
(accepts connections, never answers), and the shared servers in every mode for
the races.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from django_creator_cache.exceptions import CacheUnavailable
from django_creator_cache.managers.sessions import SessionManager, session_name
from django_creator_cache.sessions import SessionStore, pending_revocations
from tests.conftest import Target, single_entry, wait_until
from tests.processes import CONTEXT, process
from tests.redis_servers import RedisServer


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(str(user.pk) if user.is_authenticated else "anonymous")


urlpatterns = [
    path("whoami/", whoami),
    path("logout/", auth_views.LogoutView.as_view(next_page="/whoami/")),
]

TIMEOUT = 0.3
STALL_OPTIONS: dict[str, Any] = {
    "SOCKET_TIMEOUT": TIMEOUT,
    "SOCKET_CONNECT_TIMEOUT": TIMEOUT,
    "RETRY_ATTEMPTS": 0,
    "CIRCUIT_FAILURES": 3,
    "CIRCUIT_COOLDOWN": 0.5,
}


@pytest.fixture
def engine(settings: Any) -> None:
    settings.SESSION_ENGINE = "django_creator_cache.sessions"
    settings.SESSION_CACHE_ALIAS = "default"
    settings.ROOT_URLCONF = __name__


@pytest.fixture
def no_pending() -> Iterator[None]:
    yield
    pending_revocations.retry()
    pending_revocations.forget()


def _entry(session_key: str) -> str:
    return SessionManager("default")._store.entry_key(session_name(session_key))


# -- logout while Redis stalls -------------------------------------------------------------------


@pytest.mark.django_db
def test_logout_while_redis_stalls_fails_and_the_old_cookie_dies_after_recovery(
    engine: None, own_redis_server: RedisServer, settings: Any, no_pending: None
) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, **STALL_OPTIONS)}
    user = User.objects.create_user("ada")
    browser = Client(raise_request_exception=True)
    browser.force_login(user)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    assert browser.get("/whoami/").content == str(user.pk).encode()
    raw = own_redis_server.client()

    own_redis_server.kill(signal.SIGSTOP)
    try:
        # The session cannot be loaded (the visitor looks logged out), yet the logout
        # must not look done: the delete by the cookie's key cannot reach Redis.
        with pytest.raises(CacheUnavailable):
            browser.post("/logout/")
        assert ("default", cookie) in pending_revocations
    finally:
        own_redis_server.kill(signal.SIGCONT)

    # After recovery the old cookie is refused everywhere: its entry is deleted from Redis
    # (by this process's pending revocations), not just forgotten by this process.
    wait_until(lambda: not raw.exists(_entry(cookie)), 10, "the session to be deleted")
    assert ("default", cookie) not in pending_revocations
    thief = Client()
    thief.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert thief.get("/whoami/").content == b"anonymous"
    assert SessionStore(cookie).load() == {}
    raw.close()


@pytest.mark.django_db
def test_a_pending_revocation_is_refused_by_this_process_before_redis_is_back(
    engine: None, own_redis_server: RedisServer, settings: Any, no_pending: None
) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, **STALL_OPTIONS)}
    store = SessionStore()
    store[SESSION_KEY] = "7"
    store.save()
    key = store.session_key
    assert key is not None
    own_redis_server.kill(signal.SIGSTOP)
    try:
        with pytest.raises(CacheUnavailable):
            SessionStore(key).flush()  # flush without a load: deletes by the key
    finally:
        own_redis_server.kill(signal.SIGCONT)
    # Even if Redis answers before the background retry ran, this process refuses it.
    assert SessionStore(key).load() == {}
    wait_until(lambda: not SessionStore(key).exists(key), 10, "the session to be deleted")


@pytest.mark.django_db
def test_async_logout_while_redis_stalls_fails_too(
    engine: None, own_redis_server: RedisServer, settings: Any, no_pending: None
) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, **STALL_OPTIONS)}
    store = SessionStore()
    store[SESSION_KEY] = "8"
    store.save()
    key = str(store.session_key)

    async def log_out() -> None:
        session = SessionStore(key)
        assert await session.aget(SESSION_KEY) is None  # the load fails open...
        with pytest.raises(CacheUnavailable):
            await session.aflush()  # ...the logout does not

    own_redis_server.kill(signal.SIGSTOP)
    try:
        asyncio.run(log_out())
    finally:
        own_redis_server.kill(signal.SIGCONT)
    wait_until(lambda: not SessionStore(key).exists(key), 10, "the session to be deleted")
    assert asyncio.run(SessionStore(key).aload()) == {}


def test_flush_after_a_failed_load_deletes_the_cookies_session(
    engine: None, redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SIGSTOP needed to show the rule: a load that failed still leaves the key to delete."""
    settings.CACHES = {"default": single_entry(redis_server)}
    store = SessionStore()
    store[SESSION_KEY] = "9"
    store.save()
    key = store.session_key
    assert key is not None

    def unavailable(self: SessionManager, session_id: str) -> None:
        raise CacheUnavailable("default", "load", ConnectionError("down"))

    with monkeypatch.context() as patch:
        patch.setattr(SessionManager, "load", unavailable)
        session = SessionStore(key)
        assert session.load() == {} and session.session_key is None
    session.flush()  # Redis answers again for the delete
    assert not SessionStore(key).exists(key)


def test_save_and_log_out_everywhere_raise_when_redis_is_down(
    engine: None, own_redis_server: RedisServer, settings: Any
) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, **STALL_OPTIONS)}
    own_redis_server.stop()
    store = SessionStore()
    store[SESSION_KEY] = "3"
    with pytest.raises(CacheUnavailable):
        store.save()
    with pytest.raises(CacheUnavailable):
        SessionStore.delete_user_sessions(3)


# -- log out everywhere against concurrent logins -----------------------------------------------


def test_a_login_racing_log_out_everywhere_is_refused(
    engine: None, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving that used to leave a session alive, made to happen every time:
    the login reads the user's epoch, log-out-everywhere runs, then the login writes."""
    keeper = SessionStore()
    keeper[SESSION_KEY] = "5"
    keeper.save()
    original = SessionManager._current_epoch

    def racing(self: SessionManager, client: Any, user: str) -> int:
        epoch = original(self, client, user)
        monkeypatch.setattr(SessionManager, "_current_epoch", original)
        assert SessionStore.delete_user_sessions(user) == 1  # the keeper
        return epoch

    monkeypatch.setattr(SessionManager, "_current_epoch", racing)
    login = SessionStore()
    login[SESSION_KEY] = "5"
    login.save()  # written after the log-out-everywhere, with the epoch read before it
    key = login.session_key
    assert key is not None
    assert SessionStore(key).load() == {}
    assert SessionStore(keeper.session_key).load() == {}
    assert SessionStore.user_session_keys(5) == []
    # A login after the call is a new, valid session.
    fresh = SessionStore()
    fresh[SESSION_KEY] = "5"
    fresh.save()
    assert SessionStore(fresh.session_key)[SESSION_KEY] == "5"
    assert SessionStore.user_session_keys(5) == [session_name(fresh.session_key)]


def test_a_session_loaded_before_log_out_everywhere_is_not_revived_by_its_save(
    engine: None, target: Target
) -> None:
    store = SessionStore()
    store[SESSION_KEY] = "6"
    store.save()
    request_view = SessionStore(store.session_key)
    assert request_view[SESSION_KEY] == "6"  # a request loaded it...
    assert SessionStore.delete_user_sessions(6) == 1  # ...the user logs out everywhere...
    request_view["cart"] = [1]
    with pytest.raises(Exception):  # noqa: B017 - UpdateError: the session is gone
        request_view.save()
    assert SessionStore(store.session_key).load() == {}


USER = "77"
LOGIN_PROCESSES = 3


def _login_loop(stop: Any, results: Any, witness: str) -> None:
    """Log USER in again and again; report each session key with its Redis-ordered sequence
    number, taken right after its save returned."""
    caches.close_all()
    raw = caches["default"].get_client()
    made: list[tuple[str, int]] = []
    while not stop.is_set():
        store = SessionStore()
        store[SESSION_KEY] = USER
        store.save()
        made.append((str(store.session_key), int(raw.incr(witness))))
    results.put(made)


def test_log_out_everywhere_racing_logins_in_other_processes(engine: None, target: Target) -> None:
    cache = target.cache
    raw = cache.get_client()
    witness = cache.make_key("witness")
    stop = CONTEXT.Event()
    results = CONTEXT.Queue()
    procs = [process(_login_loop, stop, results, witness) for _ in range(LOGIN_PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        wait_until(lambda: int(raw.get(witness) or 0) > 30, 20, "logins to be under way")
        calls = []
        for _ in range(5):  # several calls, each racing the logins
            started = int(raw.incr(witness))
            SessionStore.delete_user_sessions(USER)
            calls.append(started)
            time.sleep(0.05)
    finally:
        stop.set()
    made = [item for _ in procs for item in results.get(timeout=30)]
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * LOGIN_PROCESSES

    last = calls[-1]
    before = [key for key, seq in made if seq < last]
    assert len(before) > 30
    # Every session whose login had returned before the last call began is refused.
    alive_before = [key for key in before if SessionStore(key).load()]
    assert alive_before == []
    # What is still valid is listed in the user's index, so the next call finds it...
    valid = {
        session_name(key) for key, _ in made if SessionStore(key).load().get(SESSION_KEY) == USER
    }
    assert valid <= set(SessionStore.user_session_keys(USER))
    # ...and once the logins stopped, one call leaves nothing.
    SessionStore.delete_user_sessions(USER)
    assert [key for key, _ in made if SessionStore(key).load()] == []
    assert SessionStore.user_session_keys(USER) == []
