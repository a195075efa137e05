"""The admin stats page and its actions (staff only).

``stats_page`` and ``action``: wired into the admin by ``admin.CacheAliasAdmin``
(``admin_site.admin_view`` makes them staff-only); both also require the
``django_creator_cache.manage_cache`` permission. An action is a GET that shows
a confirmation page and a POST (CSRF-protected) that runs it. The chart's
geometry is in ``charts``, the actions and their forms in ``actions``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import conf, history
from ..health import check, our_caches, report
from ..models import MANAGE_PERMISSION, CacheAlias
from ..redis_urls import url_password
from ..stats import prefix_counts
from .actions import ACTIONS, Action, ClearForm, clear_refusal
from .charts import Chart, chart

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from ..backend.cache import RedisCache

admin_logger = logging.getLogger("django_creator_cache.admin")

PREFIXES_SHOWN = 20
DASH = "\N{EN DASH}"
MODE_NAMES = {"single": "Single server", "sentinel": "Sentinel", "cluster": "Cluster"}


# -- the stats page -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a facts table; ``state`` ("ok", "bad", "warn") colours the value."""

    label: str
    value: str
    state: str = ""


@dataclass
class AliasView:
    """Everything the page shows about one alias, formatted."""

    alias: str
    location: str
    mode: str
    healthy: bool
    circuit: str
    error: str | None
    status: list[Row]
    counters: list[Row]
    server: list[Row]
    nodes: list[dict[str, Any]]
    key_prefix: str
    clear_refusal: str | None
    prefixes: list[tuple[str, int]] = field(default_factory=list)
    other_prefixes: int = 0
    sampled: int = 0
    complete: bool = True
    chart: Chart | None = None
    samples: int = 0
    actions: dict[str, str] = field(default_factory=dict)
    """URL of each action's confirmation page, by slug with ``_`` for ``-``."""

    @property
    def tables(self) -> list[tuple[str, list[Row]]]:
        return [
            ("Health", self.status),
            ("Statistics (site-wide)", self.counters),
            ("Keys and memory", self.server),
        ]


def require_manage(request: HttpRequest) -> None:
    """Active staff with ``django_creator_cache.manage_cache``, or 403."""
    user = request.user
    staff = bool(getattr(user, "is_staff", False))
    if not (user.is_active and staff and user.has_perm(MANAGE_PERMISSION)):
        raise PermissionDenied


def _number(value: Any) -> str:
    return DASH if value is None else f"{int(value):,}"


def _bytes(value: Any) -> str:
    return DASH if value is None else str(filesizeformat(int(value)))


def _duration(seconds: Any) -> str:
    if seconds is None:
        return DASH
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def scrub(text: str | None, cache: RedisCache) -> str | None:
    """``text`` without the alias's passwords, should an error message ever carry one."""
    if not text:
        return text
    options = cache.options
    secrets = {str(options.password)} if options.password else set()
    for url in options.urls:
        quoted, password = urlsplit(url).password, url_password(url)
        secrets.update(secret for secret in (quoted, password) if secret)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _mode(cache: RedisCache, nodes: list[dict[str, Any]]) -> str:
    options = cache.options
    name = MODE_NAMES.get(options.mode, options.mode)
    if options.mode == "sentinel":
        return f"{name} ({len(options.sentinels)} sentinels)"
    if options.mode == "cluster" and nodes:
        return f"{name} ({len(nodes)} primaries)"
    return name


def _alias_view(alias: str, cache: RedisCache, scan_limit: int) -> AliasView:
    facts = report(cache)
    healthy = bool(facts["healthy"])
    nodes = [
        {
            "address": node.get("address"),
            "keys": _number(node.get("keys")),
            "memory": _bytes(node.get("used_memory")),
            "version": node.get("redis_version") or DASH,
            "uptime": _duration(node.get("uptime_seconds")),
        }
        for node in facts.get("nodes", [])
    ]
    circuit = str(facts["circuit"])
    latency = facts["latency_ms"]
    status = [
        Row("Mode", _mode(cache, nodes)),
        Row("Location", cache.options.safe_location),
        Row("Availability", "available" if healthy else "unavailable", "ok" if healthy else "bad"),
        Row("Circuit", circuit, "ok" if circuit == "closed" else "bad"),
        Row("Ping latency", DASH if latency is None else f"{latency:.2f} ms"),
        Row("Redis version", facts.get("redis_version") or DASH),
        Row("Uptime", _duration(facts.get("uptime_seconds"))),
    ]
    if cache.options.sentinels:
        sentinels = ", ".join(f"{host}:{port}" for host, port in cache.options.sentinels)
        status.insert(2, Row("Sentinels", sentinels))
    errors = int(facts["errors"])
    counters = [
        Row("Hits", _number(facts["hits"])),
        Row("Misses", _number(facts["misses"])),
        Row("Hit rate", f"{facts['hit_rate'] * 100:.1f} %"),
        Row("Sets", _number(facts["sets"])),
        Row("Deletes", _number(facts["deletes"])),
        Row("Errors", _number(errors), "warn" if errors else ""),
    ]
    evicted = facts.get("evicted_keys")
    server = [
        Row("Keys in the database", _number(facts.get("keys"))),
        Row("Memory used", _bytes(facts.get("used_memory"))),
        Row("Memory peak", _bytes(facts.get("used_memory_peak"))),
        Row("Evictions", _number(evicted), "warn" if evicted else ""),
    ]
    view = AliasView(
        alias=alias,
        location=cache.options.safe_location,
        mode=cache.options.mode,
        healthy=healthy,
        circuit=circuit,
        error=scrub(facts["health_error"] or facts.get("server_error"), cache),
        status=status,
        counters=counters,
        server=server,
        nodes=nodes,
        key_prefix=cache.key_prefix,
        clear_refusal=clear_refusal(cache, alias),
    )
    if not facts.get("site_wide"):
        view.counters.append(Row("Scope", "this process only (Redis did not answer)", "warn"))
    if healthy:
        history.maybe_sample(cache)
        stored = history.samples(cache)
        view.samples = len(stored)
        view.chart = chart(history.points(stored), time.time())
        if scan_limit > 0:
            counts, view.sampled, view.complete = prefix_counts(cache, scan_limit)
            view.prefixes = counts[:PREFIXES_SHOWN]
            view.other_prefixes = len(counts) - len(view.prefixes)
    return view


def _admin_context(
    request: HttpRequest, model_admin: ModelAdmin[Any], title: str
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "stats_url": reverse(_url_name(model_admin, "changelist"), current_app=_app(model_admin)),
    }


def _url_name(model_admin: ModelAdmin[Any], name: str) -> str:
    opts = model_admin.opts
    return f"admin:{opts.app_label}_{opts.model_name}_{name}"


def _app(model_admin: ModelAdmin[Any]) -> str:
    return str(model_admin.admin_site.name)


def stats_page(request: HttpRequest, model_admin: ModelAdmin[Any]) -> HttpResponse:
    """Every alias on this backend: health, counters, server facts, prefixes, the last hour."""
    require_manage(request)
    scan_limit = int(conf.read("CACHE_ADMIN_SCAN_LIMIT"))
    context = _admin_context(request, model_admin, "Cache statistics")
    views = []
    for alias, cache in our_caches():
        view = _alias_view(alias, cache, scan_limit)
        view.actions = {
            slug.replace("-", "_"): reverse(
                _url_name(model_admin, "action"), args=[alias, slug], current_app=_app(model_admin)
            )
            for slug in ACTIONS
        }
        views.append(view)
    context.update(
        caches=views,
        scan_limit=scan_limit,
        history_interval=float(conf.read("CACHE_STATS_HISTORY_INTERVAL")),
        prefixes_shown=PREFIXES_SHOWN,
    )
    return TemplateResponse(request, "django_creator_cache/admin/stats.html", context)


def action(
    request: HttpRequest, model_admin: ModelAdmin[Any], alias: str, slug: str
) -> HttpResponse:
    """GET: the confirmation page; POST: run the action, log it, back to the stats page."""
    require_manage(request)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    chosen = ACTIONS.get(slug)
    if chosen is None:
        raise Http404("no such action")
    try:
        ((_, cache),) = our_caches([alias])
    except KeyError:
        raise Http404("no such cache") from None
    # Back to the top of the page, where the message is shown.
    back = reverse(_url_name(model_admin, "changelist"), current_app=_app(model_admin))
    refusal = clear_refusal(cache, alias) if slug == "clear" else None
    if request.method == "POST":
        if refusal:
            messages.error(request, refusal)
            return HttpResponseRedirect(back)
        form = chosen.form_class(request.POST)
        if form.is_valid():
            return _run(request, model_admin, alias, cache, chosen, form.cleaned_data, back)
    else:
        form = chosen.form_class(request.GET if request.GET else None)
    ready = form.is_bound and form.is_valid()
    if chosen.form_class is ClearForm:
        ready = True
    value = next(iter(form.cleaned_data.values()), "") if ready and form.fields else ""
    context = _admin_context(request, model_admin, f"{chosen.title}: are you sure?")
    context.update(
        action=chosen,
        alias=alias,
        location=cache.options.safe_location,
        key_prefix=cache.key_prefix,
        key_head=f"{cache.key_prefix}{cache.key_separator}",
        separator=cache.key_separator,
        form=form,
        ready=ready,
        value=value,
        refusal=refusal,
        untracked=slug == "invalidate-prefix" and ready and not cache.tracks_prefix(value),
        back=back,
    )
    return TemplateResponse(request, "django_creator_cache/admin/confirm.html", context)


def _run(
    request: HttpRequest,
    model_admin: ModelAdmin[Any],
    alias: str,
    cache: RedisCache,
    chosen: Action,
    data: dict[str, Any],
    back: str,
) -> HttpResponse:
    checked = check(cache)
    if not checked["healthy"]:
        error = scrub(checked["error"], cache)
        messages.error(request, f"Cache {alias!r} is unavailable ({error}): nothing was done.")
        return HttpResponseRedirect(back)
    try:
        done = chosen.run(cache, alias, data)
    except ValueError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    user = request.user
    admin_logger.info("%s (user id %s): %s", user.get_username(), user.pk, done)
    model_admin.log_change(request, CacheAlias(alias=alias), done)
    messages.success(request, done)
    return HttpResponseRedirect(back)
