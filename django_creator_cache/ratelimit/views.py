"""Answers to a blocked request; ``RATELIMIT_VIEW`` names one (or your own).

A blocked-request view takes ``(request, exception)`` like ``handler403``; ``exception`` is
a ``Ratelimited`` whose ``usage`` says which limit refused and when to retry. The decorator
adds ``Retry-After`` and ``RateLimit-*`` headers to whatever response the view returns.
"""

from __future__ import annotations

from typing import NoReturn

from django.http import HttpRequest, HttpResponse

from ..exceptions import Ratelimited


def too_many_requests(request: HttpRequest, exception: Ratelimited) -> HttpResponse:
    """The default: 429 with a one-line text body."""
    return HttpResponse(
        "Too many requests: try again later.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )


def raise_ratelimited(request: HttpRequest, exception: Ratelimited) -> NoReturn:
    """Raise ``Ratelimited`` (a ``PermissionDenied``) for middleware, DRF's exception
    handler or Django's ``handler403`` to answer: ``RATELIMIT_VIEW`` set to this path."""
    raise exception
