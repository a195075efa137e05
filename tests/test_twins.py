"""Every public method of the backend that talks to Redis has an async twin, and the two
give the same result and leave the same data, on single Redis, Sentinel and Cluster.

Both come from one description (``backend.ops``), so this guards the binding and the
two runners: each case runs once through the sync method and once through its ``a``
twin (with sync redis-py refused inside the loop), from the same starting data.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from django_creator_cache.backend import RedisCache
from tests.conftest import Target, flush
from tests.test_async_conformance import _sync_client_refuses, run  # noqa: F401

# Methods with no I/O, or that hand out a client/lock object: no twin needed.
PURE = {
    "make_key", "make_keys", "make_and_validate_key", "validate_key", "make_pattern",
    "reverse_key", "delete_key", "clear_glob", "px", "internal_key", "internal_name",
    "tracks_prefix", "indexes_of", "index_key", "prefix_index", "tag_indexes", "read",
    "read_many", "decode", "log_corrupt", "fallback_get", "fallback_get_many",
    "forget_local", "forget_tier", "forget_all_local", "get_client", "reset",
    "get_backend_timeout", "lock", "flush_stats",
}  # fmt: skip


def test_every_public_method_that_talks_to_redis_has_an_async_twin() -> None:
    public = {
        name
        for name, member in inspect.getmembers(RedisCache)
        if not name.startswith("_") and callable(member) and not inspect.isclass(member)
    }
    twins = {name for name in public if f"a{name}" in public}
    async_side = {f"a{name}" for name in twins}
    lonely = public - twins - async_side - PURE
    assert lonely == set(), f"sync methods without an async twin: {sorted(lonely)}"
    for name in twins:
        twin = getattr(RedisCache, f"a{name}")
        native = inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin)
        assert native or name in ("sscan_iter", "lock"), name  # these hand out async objects


def _seed(cache: Any) -> None:
    cache.set("k", "value", 100)
    cache.set("n", 5)
    cache.set("forever", 1, None)
    cache.set_many({"m1": 1, "m2": [2]})
    cache.set("campaigns:1", "c1", tags=["grp"])
    cache.set("campaigns:2", "c2")
    cache.set("t:1", "t1", tags=["grp"])


NOW = datetime.datetime.now(datetime.UTC)
# (method, args, kwargs): every twin of the Django API and django-redis's extras.
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("get", ("k",), {}),
    ("get", ("missing", "d"), {}),
    ("set", ("k", {"x": 1}), {}),
    ("set", ("new", 1), {"nx": True}),
    ("set", ("k", 2), {"nx": True}),
    ("set", ("k", 3), {"xx": True, "timeout": 50}),
    ("set", ("gone", 1, 0), {}),
    ("add", ("k", "other"), {}),
    ("add", ("fresh", "value"), {"tags": ["grp"]}),
    ("get_many", (["k", "m1", "m2", "missing"],), {}),
    ("set_many", ({"a": 1, "b": "two"},), {"timeout": 30}),
    ("delete", ("k",), {}),
    ("delete", ("missing",), {}),
    ("delete_many", (["m1", "m2", "missing"],), {}),
    ("has_key", ("k",), {}),
    ("has_key", ("missing",), {}),
    ("touch", ("k", 300), {}),
    ("touch", ("k", None), {}),
    ("incr", ("n", 3), {}),
    ("decr", ("n", 2), {}),
    ("incr", ("counter", 1), {"ignore_key_check": True}),
    ("incr_version", ("k",), {}),
    ("decr_version", ("k",), {}),
    ("ttl", ("k",), {}),
    ("ttl", ("forever",), {}),
    ("pttl", ("missing",), {}),
    ("expire", ("k", 500), {}),
    ("pexpire", ("k", 500_000), {}),
    ("expire_at", ("k", NOW + datetime.timedelta(hours=1)), {}),
    ("pexpire_at", ("k", NOW + datetime.timedelta(hours=1)), {}),
    ("persist", ("k",), {}),
    ("keys", ("campaigns:*",), {}),
    ("delete_pattern", ("campaigns:*",), {}),
    ("invalidate_tags", ("grp",), {}),
    ("index_size", (None,), {}),
    ("get_or_set", ("k", "computed"), {}),
    ("get_or_set", ("cold", lambda: "computed"), {}),
    ("clear", (), {}),
]


def _state(cache: Any) -> dict[str, Any]:
    names = ["k", "n", "forever", "m1", "m2", "a", "b", "new", "fresh", "counter", "cold"]
    names += ["campaigns:1", "campaigns:2", "t:1", "gone"]
    values = cache.get_many(names)
    lives = {name: _life(cache.pttl(name)) for name in names}
    versions = cache.get_many(["k"], version=2)
    return {"values": values, "lives": lives, "version2": versions}


def _life(ms: int | None) -> str:
    return "none" if ms is None else "gone" if ms == 0 else "expiring"


def _normal(result: Any) -> Any:
    if isinstance(result, list):
        return sorted(map(str, result))
    return result


def _args(cache: Any, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if name == "index_size":
        return ("grp",)
    return args


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_sync_and_async_twins_give_the_same_result(
    target: Target, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    cache = target.cache
    call_args = _args(cache, name, args)

    def once(call: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
        flush(cache)
        _seed(cache)
        result = call()
        return _normal(result), _state(cache)

    sync = once(lambda: getattr(cache, name)(*call_args, **kwargs))

    async def twin() -> Any:
        return await getattr(cache, f"a{name}")(*call_args, **kwargs)

    asynchronous = once(lambda: run(twin))
    assert asynchronous == sync


def test_iter_keys_twins_list_the_same_keys(target: Target) -> None:
    cache = target.cache
    _seed(cache)

    async def listed() -> list[str]:
        return [key async for key in cache.aiter_keys("campaigns:*")]

    assert sorted(cache.iter_keys("campaigns:*")) == sorted(run(listed))
    assert sorted(run(listed)) == ["campaigns:1", "campaigns:2"]
