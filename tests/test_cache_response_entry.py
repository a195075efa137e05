"""A stored page's life, read back: planted or skewed values never break a hit.

A page blob carries when it was stored and for how long. A value whose time or life is
not a finite number is not a page (a miss, rendered and stored again), never a 500 on
every request until it expires. A page written by a server whose clock runs ahead never
tells browsers to keep it longer than it was stored for.
"""

from __future__ import annotations

import time

import pytest
from django.http import HttpResponse

from django_creator_cache.views_cache import entry


def _blob(ttl: float, stored_at: float | None = None) -> bytes:
    page = entry.encode(HttpResponse(b"page"), ttl, text=False, stored_at=stored_at)
    assert isinstance(page, bytes)
    return page


@pytest.mark.parametrize(
    ("ttl", "stored_at"),
    [(float("inf"), None), (float("nan"), None), (300.0, float("-inf")), (300.0, float("nan"))],
    ids=["life-inf", "life-nan", "stored-minus-inf", "stored-nan"],
)
def test_a_page_whose_time_or_life_is_not_finite_is_not_a_page(
    ttl: float, stored_at: float | None
) -> None:
    assert entry.read(_blob(ttl, stored_at)) is None


def test_a_page_written_by_a_clock_running_ahead_is_kept_no_longer_than_its_life() -> None:
    page = entry.read(_blob(300.0, stored_at=time.time() + 3600))
    assert page is not None
    remaining = page.remaining()
    assert remaining is not None and 299 <= remaining <= 300


def test_a_page_without_expiry_has_no_remaining_life() -> None:
    page = entry.read(_blob(-1.0))
    assert page is not None and page.expires is None and page.remaining() is None
