"""Views for the response-cache tests: each shows how often it rendered."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import cache_control, cache_page
from django.views.generic import TemplateView

from django_creator_cache.views_cache import cache_response

from .models import Campaign

RENDERS: Counter[str] = Counter()
_renders_lock = threading.Lock()
SLOW_SECONDS = 0.3


def rendered(name: str) -> int:
    """Count one render of ``name``; returns how many so far (thread-safe)."""
    with _renders_lock:
        RENDERS[name] += 1
        return RENDERS[name]


@cache_response(ttl=60, name="page")
def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"page render {rendered('page')} query {request.GET.urlencode()}")


@cache_response
def default_options(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"default render {rendered('default')}")


@cache_response(ttl=60, name="paged", vary_on_query=["page"])
def paged(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"paged render {rendered('paged')}")


@cache_response(ttl=60, name="status", statuses={200, 301, 404})
def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse(f"{code} render {rendered(f'status-{code}')}", status=code)


@cache_response(ttl=60, name="missing")
def missing(request: HttpRequest) -> HttpResponse:
    return HttpResponseNotFound(f"missing render {rendered('missing')}")


@cache_response(ttl=60, name="cookie")
def cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"cookie render {rendered('cookie')}")
    response.set_cookie("seen", "1")
    return response


@cache_response(ttl=60, name="private")
@cache_control(private=True)
def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"private render {rendered('private')}")


@cache_response(ttl=60, name="csrf")
def csrf(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"<input name=csrfmiddlewaretoken value={get_token(request)}>")


def add_message(request: HttpRequest) -> HttpResponse:
    messages.success(request, "Campaign saved")
    return HttpResponse("ok")


@cache_response(ttl=60, name="flash")
def flash(request: HttpRequest) -> HttpResponse:
    shown = " ".join(str(m) for m in messages.get_messages(request))
    return HttpResponse(f"flash render {rendered('flash')} [{shown}]")


@cache_response(ttl=60, name="anyone")
def anyone(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.user.get_username() or 'anonymous'}")


@cache_response(ttl=60, name="mine", vary_on_user=True)
def mine(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"mine {request.user.get_username() or 'anonymous'} {rendered('mine')}")


@cache_response(ttl=60, name="lang", vary_on_headers=["Accept-Language"])
def lang(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"lang {request.headers.get('Accept-Language')} {rendered('lang')}")


@cache_response(policy="view_tracking", name="policy")
def policy(request: HttpRequest) -> HttpResponse:
    return HttpResponse("policy")


@cache_response(ttl=60, name="slow")
def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(SLOW_SECONDS)
    return HttpResponse(f"slow render {rendered('slow')}")


@cache_response(ttl=60, name="slow-cookie")
def slow_cookie(request: HttpRequest) -> HttpResponse:
    time.sleep(SLOW_SECONDS)
    response = HttpResponse(f"slow cookie render {rendered('slow-cookie')}")
    response.set_cookie("seen", "1")
    return response


@cache_response(ttl="5m", name="campaign", tags=lambda request, pk: [f"campaign:{pk}"])
def campaign(request: HttpRequest, pk: int) -> HttpResponse:
    found = Campaign.objects.get(pk=pk)
    return HttpResponse(f"{found.name} render {rendered(f'campaign-{pk}')}")


@cache_response(ttl=60, name="async")
async def async_page(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse(f"async render {rendered('async')} user {(await request.auser()).pk}")


class CampaignList(View):
    """Cached under the prefix the Campaign rule invalidates: saving a campaign drops it."""

    @method_decorator(cache_response(ttl=60, prefix="campaigns"))
    def get(self, request: HttpRequest) -> HttpResponse:
        names = ", ".join(Campaign.objects.order_by("pk").values_list("name", flat=True))
        return HttpResponse(f"campaigns: {names} render {rendered('campaign-list')}")


class Dashboard(TemplateView):
    """A TemplateResponse: rendered after the view returns, stored after that."""

    template_name = "testapp/dashboard.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["campaigns"] = list(Campaign.objects.all())
        context["render"] = rendered("dashboard")
        return context


dashboard = cache_response(ttl=60, prefix="dashboard", name="main")(Dashboard.as_view())


@cache_page(60, cache="default")
def django_cache_page(request: HttpRequest) -> HttpResponse:
    """The same page under Django's ``cache_page``, for comparing command counts."""
    return HttpResponse(f"page render {rendered('django')}")


BINARY_BODY = bytes(range(256)) * 4


@cache_response(ttl=60, name="binary", statuses={203})
def binary(request: HttpRequest) -> HttpResponse:
    """A binary body, a status and reason of its own, a header beyond ASCII."""
    rendered("binary")
    response = HttpResponse(BINARY_BODY, status=203, content_type="application/octet-stream")
    response.reason_phrase = "Partly Yours"
    response["X-Menu"] = "café crème"
    return response


@cache_response(ttl=60, name="async-binary", statuses={203})
async def async_binary(request: HttpRequest) -> HttpResponse:
    return binary.__wrapped__(request)  # type: ignore[attr-defined, no-any-return]
