"""``@cached`` on real servers (all three modes) and its argument keys."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.contrib.auth.models import User

from django_creator_cache.cache_aside import cached
from django_creator_cache.cache_aside.arguments import canonical

REPO = Path(__file__).resolve().parent.parent


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@cached(prefix="stable")
def stable(filters: Any, when: Any) -> None:
    """Only its keys are used (in another process, by the stability test)."""


def test_function_results_are_cached_by_arguments(cache: Any) -> None:
    calls: list[tuple[Any, ...]] = []

    @cached(ttl="10m", prefix="campaigns")
    def campaigns(owner: int, status: str = "live", *, page: int = 1) -> list[Any]:
        calls.append((owner, status, page))
        return [owner, status, page]

    assert campaigns(1) == [1, "live", 1]
    assert campaigns(1) == [1, "live", 1]
    assert campaigns(owner=1, status="live") == [1, "live", 1]  # same call, same key
    assert campaigns(1, page=2) == [1, "live", 2]
    assert calls == [(1, "live", 1), (1, "live", 2)]
    key = campaigns.key_for(1)
    assert key.startswith("campaigns:") and key == campaigns.key_for(owner=1, status="live")
    assert 595 <= cache.ttl(key) <= 600
    assert campaigns.invalidate(1) is True
    assert campaigns(1) == [1, "live", 1]
    assert len(calls) == 3
    assert campaigns.invalidate(99) is False


def test_policy_key_function_and_default_prefix(cache: Any, settings: Any) -> None:
    settings.CACHE_TTL_BOT_ANALYSIS = 77

    @cached(policy="bot_analysis", key=lambda promoter, campaign: f"{promoter}-{campaign}")
    def score(promoter: int, campaign: int) -> float:
        return 0.5

    assert score(3, 4) == 0.5
    assert score.key_for(3, 4) == f"{__name__}.{score.__qualname__}:3-4"
    assert 72 <= cache.ttl(score.key_for(3, 4)) <= 77

    @cached(key=lambda items: sorted(items))  # not a str: hashed
    def total(items: set[int]) -> int:
        return sum(items)

    assert total({3, 1, 2}) == 6
    assert len(total.key_for({1, 2, 3}).rsplit(":", 1)[1]) == 32


def test_methods_leave_the_instance_out_unless_asked(cache: Any) -> None:
    calls: list[Any] = []

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name

        @cached(ttl=60)
        def count(self, status: str) -> int:
            calls.append((self.name, status))
            return len(status)

    a, b = Repo("a"), Repo("b")
    assert a.count("live") == 4
    assert b.count("live") == 4  # same arguments, another instance: a hit
    assert calls == [("a", "live")]
    assert a.count.key_for("live") == Repo.count.key_for(b, "live")
    assert b.count.invalidate("live") is True
    assert b.count("live") == 4 and calls[-1] == ("b", "live")
    assert Repo.count.invalidate(a, "live") is True

    @dataclasses.dataclass(frozen=True)
    class Account:
        id: int

        @cached(ttl=60, include_self=True)
        def balance(self) -> int:
            calls.append(self.id)
            return self.id * 10

    assert Account(1).balance() == 10 and Account(2).balance() == 20
    assert Account(1).balance() == 10
    assert calls[-2:] == [1, 2]


def test_tags_are_stored_for_tag_invalidation(cache: Any) -> None:
    @cached(tags=["campaigns"])
    def listing() -> list[int]:
        return []

    @cached(tags=lambda campaign_id: [f"campaign:{campaign_id}", "campaigns"])
    def detail(campaign_id: int) -> dict[str, int]:
        return {"id": campaign_id}

    assert listing.tags_for() == ("campaigns",)
    assert detail.tags_for(7) == ("campaign:7", "campaigns")
    assert detail(7) == {"id": 7}


def test_misses_compute_once_across_threads(cache: Any) -> None:
    calls: list[int] = []

    @cached(ttl=60)
    def slow(n: int) -> int:
        calls.append(n)
        time.sleep(0.2)
        return n * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [42] * 8
    assert calls == [21]


def test_async_functions(cache: Any) -> None:
    calls: list[int] = []

    @cached(ttl=60)
    async def fetch(n: int) -> dict[str, int]:
        calls.append(n)
        await asyncio.sleep(0.2)
        return {"n": n}

    assert iscoroutinefunction(fetch)

    async def scenario() -> None:
        got = await asyncio.gather(*(fetch(5) for _ in range(6)))
        assert got == [{"n": 5}] * 6
        assert await fetch(5) == {"n": 5}
        assert fetch.invalidate(5) is True
        assert await fetch(5) == {"n": 5}

    asyncio.run(scenario())
    assert calls == [5, 5]


def test_other_backends_get_djangos_get_or_set(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    calls: list[int] = []

    @cached(ttl=60)
    def double(n: int) -> int:
        calls.append(n)
        return n * 2

    assert double(2) == 4 and double(2) == 4
    assert calls == [2]


def test_misuse_is_reported() -> None:
    with pytest.raises(TypeError, match="ttl or policy"):
        cached(ttl=5, policy="session")
    with pytest.raises(ValueError, match="unknown TTL policy"):
        cached(policy="nope")
    with pytest.raises(TypeError, match="below @staticmethod"):
        cached(staticmethod(lambda: 1))  # type: ignore[call-overload]


# -- argument keys -----------------------------------------------------------------------


def test_canonical_forms_are_equal_for_equal_values() -> None:
    assert canonical({"b": 1, "a": {2, 1}}) == canonical({"a": {1, 2}, "b": 1})
    assert canonical(frozenset({"x", "y"})) == canonical(frozenset({"y", "x"}))
    assert canonical(decimal.Decimal("1.50")) == canonical(decimal.Decimal("1.50"))
    # Values Python calls equal but that are different arguments get different keys.
    assert len({canonical(v) for v in (1, True, 1.0, "1", decimal.Decimal(1))}) == 5
    assert canonical([1, 2]) != canonical((1, 2))
    assert canonical(Color.RED) != canonical("red")
    assert canonical(Point(1, 2)) == canonical(Point(1, 2)) != canonical(Point(2, 1))
    an_id = uuid.UUID(int=5)
    assert canonical(an_id) == canonical(uuid.UUID(str(an_id)))
    aware = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert canonical(aware) != canonical(aware.replace(tzinfo=None))
    assert canonical(User(pk=3)) == canonical(User(pk=3)) != canonical(User(pk=4))
    with pytest.raises(TypeError, match="key="):
        canonical(object())


def test_keys_are_the_same_in_another_process() -> None:
    """``hash()`` of a str changes per process; our keys must not."""
    args = ({"status": "live", "tags": {"b", "a", "c"}}, datetime.date(2024, 1, 15))
    here = stable.key_for(*args)
    code = (
        "import django, datetime; django.setup(); "
        "from tests.test_cached import stable; "
        "print(stable.key_for({'tags': {'c', 'a', 'b'}, 'status': 'live'}, "
        "datetime.date(2024, 1, 15)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONHASHSEED": "random"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == here


def test_cached_results_join_their_tags_and_prefix(cache: Any) -> None:
    from django_creator_cache.cache_aside import cached

    calls: list[int] = []

    @cached(ttl=60, prefix="tagged-stats", tags=lambda pk: [f"campaign:{pk}"])
    def stats(pk: int) -> int:
        calls.append(pk)
        return pk * 10

    assert stats(1) == 10 and stats(2) == 20 and stats(1) == 10
    assert calls == [1, 2]
    assert cache.invalidate_tags("campaign:1") == 1
    assert stats(1) == 10 and stats(2) == 20
    assert calls == [1, 2, 1]
    assert cache.invalidate_prefix("tagged-stats") == 2
    stats(2)
    assert calls == [1, 2, 1, 2]


def test_get_or_set_tags(cache: Any) -> None:
    assert cache.get_or_set("gos:1", lambda: "v", 60, tags=["gos-tag"]) == "v"
    assert cache.invalidate_tags("gos-tag") == 1
    assert cache.get("gos:1") is None
