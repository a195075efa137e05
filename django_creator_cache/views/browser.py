"""The admin key browser: an alias's keys page by page, one key's value, delete, TTL.

Wired into the admin by ``admin.CacheAliasAdmin`` (staff only, CSRF on every POST).
Keys, types, TTLs and sizes need ``django_creator_cache.manage_cache``; values also
``django_creator_cache.view_cache_values`` (they may hold personal data): without it
they are not even read. A value is decoded by the alias's codec, so with signed values
on, bytes this site did not sign are refused, never unpickled. Every change is logged
with the user, like the stats page's actions.
"""

from __future__ import annotations

import pprint
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import reverse

from ..backend.ops import browse
from ..backend.ops.common import text as key_text
from ..exceptions import CacheUnavailable, CorruptValue
from ..health import our_caches
from ..models import VIEW_VALUES_PERMISSION, CacheAlias
from .admin import _admin_context, _app, _bytes, _url_name, admin_logger, require_manage, scrub

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from ..backend.cache import RedisCache

REFUSED = "refused (not signed by this site)"
# Characters of a value shown on a key's page, and of each element of a sample.
VALUE_CHARS = 4000
ELEMENT_CHARS = 300
MAX_PATTERN = 200
# A TTL the form accepts at most: ten years, in seconds.
MAX_TTL = 10 * 365 * 86400


class KeyForm(forms.Form):
    key = forms.CharField(max_length=4096, strip=False)


class ExpireForm(KeyForm):
    seconds = forms.IntegerField(
        min_value=1, max_value=MAX_TTL, required=False, help_text="empty: no expiry"
    )


def _cache(alias: str) -> RedisCache:
    try:
        ((_, cache),) = our_caches([alias])
    except KeyError:
        raise Http404("no such cache") from None
    return cache


def _urls(model_admin: ModelAdmin[Any], alias: str) -> dict[str, str]:
    app = _app(model_admin)
    return {
        name: reverse(_url_name(model_admin, name), args=[alias], current_app=app)
        for name in ("keys", "key", "key_delete", "key_expire")
    }


def _ttl(ms: int | None) -> str:
    """Milliseconds left, as the admin reads them."""
    if ms is None:
        return "no expiry"
    seconds, rest = divmod(ms, 1000)
    days, left = divmod(seconds, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s" if seconds else f"{rest} ms"


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text[:limit], True) if len(text) > limit else (text, False)


def _link(base: str, key: str) -> str | None:
    """The key page's URL for ``key``; None for a key that is not UTF-8."""
    try:
        key.encode()
    except UnicodeEncodeError:
        return None
    return f"{base}?{urlencode({'key': key})}"


def can_see_values(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_VALUES_PERMISSION))


def decoded(cache: RedisCache, raw: bytes, limit: int = VALUE_CHARS) -> tuple[str, bool, str]:
    """``(text, truncated, note)`` of one stored value: decoded by the alias's codec
    (signature checked first when values are signed), never anything else."""
    codec = cache.codec
    try:
        value = codec.decode(raw)
    except CorruptValue as exc:
        # The signer refuses without a cause; a serializer failure carries its own.
        if codec.signed and exc.__cause__ is None:
            return "", False, REFUSED
        text, cut = _cut(repr(raw), limit)
        return text, cut, f"not readable with {codec.serializer_name}: raw bytes shown"
    try:
        text = value if isinstance(value, str) else pprint.pformat(value, width=100)
    except Exception as exc:  # a class whose repr fails must not break the page
        text = f"<{type(value).__name__} object: repr failed with {type(exc).__name__}>"
    text, cut = _cut(text, limit)
    return text, cut, f"decoded: {type(value).__name__}"


def _element(cache: RedisCache, item: Any) -> str:
    if isinstance(item, bytes):
        text, cut, note = decoded(cache, item, ELEMENT_CHARS)
        return REFUSED if note == REFUSED else text + ("…" if cut else "")
    return _cut(repr(item), ELEMENT_CHARS)[0]


def _sample(cache: RedisCache, kind: str, items: list[Any]) -> list[tuple[str, str]]:
    """Rows of a sample: (field or score or id, value)."""
    rows: list[tuple[str, str]] = []
    for item in items:
        if kind == "hash":
            name, value = item
            rows.append((key_text(name), _element(cache, value)))
        elif kind == "zset":
            member, score = item
            rows.append((str(score), _element(cache, member)))
        elif kind == "stream":
            entry, fields = item
            rows.append((key_text(entry), _cut(repr(fields), ELEMENT_CHARS)[0]))
        else:
            rows.append(("", _element(cache, item)))
    return rows


def _format(cache: RedisCache) -> str:
    options = cache.options
    parts = [cache.codec.serializer_name]
    if options.compressor:
        parts.append(f"{options.compressor} compression")
    parts.append("signed" if cache.codec.signed else "unsigned")
    return ", ".join(parts)


def key_list(request: HttpRequest, model_admin: ModelAdmin[Any], alias: str) -> HttpResponse:
    """A page of the alias's keys matching a glob, with type, TTL and size."""
    require_manage(request)
    cache = _cache(alias)
    pattern = request.GET.get("pattern", "")[:MAX_PATTERN] or "*"
    cursor = request.GET.get("cursor", "")
    urls = _urls(model_admin, alias)
    error = None
    try:
        page = cache.browse_keys(pattern, cursor)
    except ValueError:  # a cursor from nowhere: start again
        page = cache.browse_keys(pattern)
    except CacheUnavailable as exc:  # strict mode
        page, error = browse.KeyPage([], cursor, available=False), scrub(str(exc), cache)
    rows = [
        {
            "key": info.key,
            "url": _link(urls["key"], info.key),
            "type": info.type,
            "ttl": _ttl(info.ttl_ms),
            "size": _bytes(info.size),
        }
        for info in page.keys
        if info.type != "none"
    ]
    following = urlencode({"pattern": pattern, "cursor": page.cursor}) if page.cursor else ""
    context = _admin_context(request, model_admin, f"Keys of cache {alias!r}")
    context.update(
        alias=alias,
        location=cache.options.safe_location,
        scope=browse.scope(cache),
        pattern=pattern,
        rows=rows,
        available=page.available,
        error=error or (None if page.available else "Redis did not answer."),
        next_url=f"{urls['keys']}?{following}" if following else "",
        first_url=f"{urls['keys']}?{urlencode({'pattern': pattern})}" if cursor else "",
        page_size=browse.PAGE_SIZE,
        max_pattern=MAX_PATTERN,
    )
    return TemplateResponse(request, "django_creator_cache/admin/keys.html", context)


def key_detail(request: HttpRequest, model_admin: ModelAdmin[Any], alias: str) -> HttpResponse:
    """One key: its facts, its value (with the permission) and the forms to change it."""
    require_manage(request)
    cache = _cache(alias)
    key = request.GET.get("key", "")
    urls = _urls(model_admin, alias)
    values = can_see_values(request)
    error = None
    try:
        detail = cache.run(browse.inspect_key(cache, key, contents=values), "inspect_key")
    except ValueError:
        raise Http404("not a key of this alias") from None
    except CacheUnavailable as exc:
        detail, error = None, scrub(f"Redis did not answer: {exc}", cache)
    context = _admin_context(request, model_admin, f"A key of cache {alias!r}")
    context.update(
        alias=alias,
        key=key,
        keys_url=urls["keys"],
        error=error,
        detail=detail,
        values=values,
        format=_format(cache),
        delete_url=urls["key_delete"],
        expire_url=urls["key_expire"],
    )
    if detail is not None:
        info = detail.info
        context.update(
            type=info.type,
            ttl=_ttl(info.ttl_ms),
            size=_bytes(info.size),
            length=detail.length,
            expire_form=ExpireForm(initial={"key": key}),
        )
        if values and detail.raw is not None:
            context["value"], context["truncated"], context["note"] = decoded(cache, detail.raw)
        context["sample"] = _sample(cache, info.type, detail.sample) if values else []
    return TemplateResponse(request, "django_creator_cache/admin/key.html", context)


def key_change(
    request: HttpRequest, model_admin: ModelAdmin[Any], alias: str, change: str
) -> HttpResponse:
    """POST only: delete a key (back to the list) or set its TTL (back to the key)."""
    require_manage(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    cache = _cache(alias)
    urls = _urls(model_admin, alias)
    form = (ExpireForm if change == "expire" else KeyForm)(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing changed: {form.errors.as_text()}")
        return HttpResponseRedirect(urls["keys"])
    key = form.cleaned_data["key"]
    back = _link(urls["key"], key) or urls["keys"]
    try:
        if change == "delete":
            back = urls["keys"]
            found = cache.run(browse.delete_key(cache, key), "delete_key")
            done = f"Deleted key {key!r} of cache {alias!r}."
        else:
            seconds = form.cleaned_data["seconds"]
            found = cache.run(browse.expire_key(cache, key, seconds), "expire_key")
            ttl = "no expiry" if seconds is None else f"{seconds} s"
            done = f"Set the TTL of key {key!r} of cache {alias!r} to {ttl}."
    except ValueError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(urls["keys"])
    except CacheUnavailable as exc:
        messages.error(request, f"Redis did not answer ({scrub(str(exc), cache)}): nothing done.")
        return HttpResponseRedirect(back)
    if not found:
        messages.warning(request, f"Key {key!r} does not exist (any more): nothing done.")
        return HttpResponseRedirect(urls["keys"])
    user = request.user
    admin_logger.info("%s (user id %s): %s", user.get_username(), user.pk, done)
    model_admin.log_change(request, CacheAlias(alias=alias), done)
    messages.success(request, done)
    return HttpResponseRedirect(back)
