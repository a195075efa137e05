"""Django REST framework views for tests/test_drf_throttles.py (and its worker processes).

``Campaigns`` uses ``DEFAULT_THROTTLE_CLASSES`` (our anon and user throttles, see
tests/settings.py); the others name their throttles per view.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.urls import path
from rest_framework import throttling as drf_throttling
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_creator_cache.ratelimit import drf


class Campaigns(APIView):
    def get(self, request: Request) -> Response:
        return Response({"campaigns": []})


class Uploads(APIView):
    throttle_classes: ClassVar[list[Any]] = [drf.ScopedRateThrottle]
    throttle_scope = "uploads"

    def get(self, request: Request) -> Response:
        return Response({"uploads": []})


class MoreUploads(Uploads):
    """Same scope: same counter."""


class Unscoped(APIView):
    throttle_classes: ClassVar[list[Any]] = [drf.ScopedRateThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


class BurstThrottle(drf.UserRateThrottle):
    """Our own rate string on the class, a token bucket."""

    scope = "burst"
    rate = "2/m"
    algorithm = "token_bucket"


class Burst(APIView):
    throttle_classes: ClassVar[list[Any]] = [BurstThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


# -- exactness under concurrency (tests/test_drf_throttles.py workers) ---------------------------


class ExactAnonThrottle(drf.AnonRateThrottle):
    scope = "exact-anon"
    rate = "100/m"


class ExactUserThrottle(drf.UserRateThrottle):
    scope = "exact-user"
    rate = "100/m"


class ExactAnon(APIView):
    throttle_classes: ClassVar[list[Any]] = [ExactAnonThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


class ExactUser(APIView):
    throttle_classes: ClassVar[list[Any]] = [ExactUserThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


class DRFAnon(APIView):
    """DRF's own anonymous throttle, for comparison."""

    throttle_classes: ClassVar[list[Any]] = [drf_throttling.AnonRateThrottle]

    def get(self, request: Request) -> Response:
        return Response({})


urlpatterns = [
    path("api/campaigns/", Campaigns.as_view()),
    path("api/uploads/", Uploads.as_view()),
]
