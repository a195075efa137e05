"""Markers derived from what a test uses, so a subset can be chosen with ``-m``.

* ``redis``: the test needs a ``redis-server`` (a server fixture in its fixture closure, its
  code or one of its fixtures' code starts one, or it runs test modules in a pytest
  subprocess). ``-m "not redis"`` is the layer that
  needs no Redis: the fast inner loop, runnable where no ``redis-server`` exists.
* ``cluster`` / ``sentinel``: it runs on a Redis Cluster / a Sentinel group (the ``target``
  fixture's parameter, or a fixture or code that starts one).
* ``browser``: it drives Chromium.
* ``conformance``: the backend's conformance suites (every Django cache API and the
  django-redis extras, sync and async) and Django's own cache test suite.

``FAST`` is the matrix's fast subset: every test that needs no Redis, plus the conformance
suites on a single server (``python -m pytest -m "$(python -m tests.selection)"``).

Nobody marks tests by hand, so the markers cannot go stale. When a run deselects ``redis``,
starting a server fails the test with a message that names it: a test this module
misjudged shows up at once instead of quietly slowing the inner loop down.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

SERVER_FIXTURES = {
    "redis": {"redis_server", "own_redis_server", "redis_cluster", "redis_sentinel", "target"},
    "cluster": {"redis_cluster"},
    "sentinel": {"redis_sentinel"},
    "browser": {"browser"},
}
SERVER_CLASSES = {
    "redis": {"RedisServer", "RedisCluster", "RedisSentinelGroup"},
    "cluster": {"RedisCluster"},
    "sentinel": {"RedisSentinelGroup"},
    "browser": {"sync_playwright", "async_playwright"},
}
# Fixtures asked for by name at run time (request.getfixturevalue("redis_server")).
FIXTURE_NAME_STRINGS = {"redis_server", "redis_cluster", "redis_sentinel", "own_redis_server"}
MARKERS = ("redis", "cluster", "sentinel", "browser")
CONFORMANCE_MODULES = {
    "test_conformance.py",
    "test_async_conformance.py",
    "test_django_cache_suite.py",
    "test_sessions.py",
}
FAST = "not redis or (conformance and not cluster and not sentinel and not slow)"


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _uses(func: Any, marker: str) -> bool:
    """Whether ``func``'s code names a server class (or asks for a server fixture by name)."""
    code = getattr(getattr(func, "__wrapped__", func), "__code__", None)
    if code is None:
        return False
    for inner in _code_objects(code):
        if SERVER_CLASSES[marker] & set(inner.co_names):
            return True
        strings = {c for c in inner.co_consts if isinstance(c, str)}
        if marker == "redis" and FIXTURE_NAME_STRINGS & strings:
            return True
        # A test that runs test modules in a pytest subprocess needs what they need.
        if (
            marker == "redis"
            and "pytest" in strings
            and any(s.startswith("tests/test_") for s in strings)
        ):
            return True
    return False


def needs(item: pytest.Item, marker: str) -> bool:
    """Whether ``item`` needs what ``marker`` stands for."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & SERVER_FIXTURES[marker]:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("target") if callspec is not None else None
        if marker == "redis" or mode is None or "target" not in fixtures:
            return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("target") == marker:
        return True
    if marker in ("cluster", "sentinel") and getattr(getattr(item, "cls", None), "mode", None) == (
        marker
    ):
        return True
    if _uses(getattr(item, "function", None), marker):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name in fixtures:
        for definition in info.name2fixturedefs.get(name, ()):
            if definition.func.__module__ != __name__ and _uses(definition.func, marker):
                return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis: needs a redis-server (set by tests/selection.py)")
    config.addinivalue_line("markers", "cluster: runs on a Redis Cluster (tests/selection.py)")
    config.addinivalue_line("markers", "sentinel: runs on a Sentinel group (tests/selection.py)")
    config.addinivalue_line("markers", "browser: drives Chromium (tests/selection.py)")
    config.addinivalue_line(
        "markers", "conformance: backend and Django cache API conformance (tests/selection.py)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in MARKERS:
            if needs(item, marker):
                item.add_marker(getattr(pytest.mark, marker))
        if item.path.name in CONFORMANCE_MODULES:
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(autouse=True)
def _no_server_unless_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``-m "not redis"``, a test that starts a server anyway fails and says so."""
    expression = request.config.getoption("-m") or ""
    if "not redis" not in expression or request.node.get_closest_marker("redis"):
        yield
        return
    from tests import redis_servers

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.node.nodeid} starts a redis-server but tests/selection.py did not "
            "mark it `redis`: make it use a server fixture (or teach selection.py)"
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redis_servers.RedisServer, "start", refuse)
        yield


if __name__ == "__main__":
    print(FAST)
