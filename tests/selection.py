"""Markers derived from what a test uses, so a subset can be chosen with ``-m``.

* ``redis``: the test needs a ``redis-server``: a server fixture among its fixtures (or the
  fixtures those use, or ask for by name), its code or a fixture's code starts one, or it
  runs test modules in a pytest subprocess. ``-m "not redis"`` is the layer that
  needs no Redis: the fast inner loop, runnable where no ``redis-server`` exists.
* ``cluster`` / ``sentinel``: it runs on a Redis Cluster / a Sentinel group (a parameter of
  that name, such as ``target``'s, or a fixture or code that starts one).
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


def _strings(func: Any) -> Iterator[tuple[set[str], set[str]]]:
    """``(names, string constants)`` of each code object of ``func``."""
    code = getattr(getattr(func, "__wrapped__", func), "__code__", None)
    if code is None:
        return
    for inner in _code_objects(code):
        yield set(inner.co_names), {c for c in inner.co_consts if isinstance(c, str)}


def _func_needs(func: Any, marker: str, item: pytest.Item, seen: set[str]) -> bool:
    """Whether ``func`` names a server class, or asks by name (``getfixturevalue``) for a
    fixture that needs one; for ``redis`` also: it runs test modules in a pytest subprocess."""
    for names, strings in _strings(func):
        if SERVER_CLASSES[marker] & names:
            return True
        if marker != "redis":
            continue
        if "pytest" in strings and any(s.startswith("tests/test_") for s in strings):
            return True
        if any(_fixture_needs(s, marker, item, seen) for s in strings if s.isidentifier()):
            return True
    return False


def _fixture_needs(name: str, marker: str, item: pytest.Item, seen: set[str]) -> bool:
    """Whether fixture ``name`` (as ``item`` sees it) needs what ``marker`` stands for."""
    if name in SERVER_FIXTURES[marker]:
        return True
    if name in seen:
        return False
    seen.add(name)
    definitions = item.session._fixturemanager.getfixturedefs(name, item) or ()
    for definition in definitions:
        if definition.func.__module__ == __name__:
            continue
        if any(_fixture_needs(arg, marker, item, seen) for arg in definition.argnames):
            return True
        if _func_needs(definition.func, marker, item, seen):
            return True
    return False


def needs(item: pytest.Item, marker: str) -> bool:
    """Whether ``item`` needs what ``marker`` stands for."""
    callspec = getattr(item, "callspec", None)
    params = set(map(str, callspec.params.values())) if callspec is not None else set()
    if marker in ("cluster", "sentinel"):
        if marker in params or getattr(getattr(item, "cls", None), "mode", None) == marker:
            return True
        if params & {"single", "cluster", "sentinel"}:
            return False  # a test run per mode: only its own mode's parameter counts
    seen: set[str] = set()
    fixtures = list(getattr(item, "fixturenames", ()))
    if any(_fixture_needs(name, marker, item, seen) for name in fixtures):
        return True
    return _func_needs(getattr(item, "function", None), marker, item, seen)


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
