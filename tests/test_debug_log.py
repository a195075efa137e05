"""DEBUG lines for hits, misses and sets (key, outcome, time), and nothing while that level
is off (the level check is all a call pays)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Target

LOGGER = "django_creator_cache.ops"


def test_hits_misses_and_sets_are_logged_at_debug(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    cache = target.cache
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        cache.set("k", "v")
        cache.get("k")
        cache.get("nope")
        cache.add("k", "other")
        cache.get_many(["k", "nope"])
        cache.set_many({"a": 1})
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    full = cache.make_key("k")
    assert any(line.startswith(f"set {full} stored ") for line in lines), lines
    assert any(line.startswith(f"get {full} hit ") for line in lines), lines
    assert any(line.startswith(f"get {cache.make_key('nope')} miss ") for line in lines), lines
    assert any(line.startswith(f"add {full} not stored ") for line in lines), lines
    assert any(line.startswith("get_many") and "1 of 2 hit" in line for line in lines), lines
    assert any(line.startswith("set_many") for line in lines), lines
    assert all(line.endswith(" ms") for line in lines)


def test_nothing_is_formatted_while_debug_is_off(
    target: Target, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    from django_creator_cache.backend.ops import common

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a DEBUG line was built while DEBUG is off")

    monkeypatch.setattr(common.logger, "debug", refuse)
    monkeypatch.setattr(common.time, "perf_counter", refuse)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        target.cache.set("k", "v")
        assert target.cache.get("k") == "v"
        assert target.cache.get_many(["k"]) == {"k": "v"}
