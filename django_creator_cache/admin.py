"""The cache statistics page in the Django admin.

``CacheAlias`` is an unmanaged model without a table: registering it puts
"Cache statistics" under "Creator cache" on the admin index, for users with
the ``django_creator_cache.manage_cache`` permission. Its admin replaces the
change list with the stats page and adds the action URLs; nothing is patched.
A project with its own ``AdminSite`` registers it there too::

    my_site.register(CacheAlias, CacheAliasAdmin)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from .models import MANAGE_PERMISSION, CacheAlias
from .views import admin as views
from .views import browser

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[CacheAlias]
else:  # not subscriptable at run time
    _ModelAdmin = admin.ModelAdmin


class CacheAliasAdmin(_ModelAdmin):
    """Stats page at the change list URL; actions at ``<alias>/<action>/``; the key
    browser at ``<alias>/keys/`` (a key's page, and its POST-only changes, below it)."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.has_perm(MANAGE_PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.stats_view), name=f"{info}_changelist"),
            path("<str:alias>/keys/", wrap(self.keys_view), name=f"{info}_keys"),
            path("<str:alias>/keys/key/", wrap(self.key_view), name=f"{info}_key"),
            path(
                "<str:alias>/keys/delete/",
                wrap(self.key_change_view),
                {"change": "delete"},
                name=f"{info}_key_delete",
            ),
            path(
                "<str:alias>/keys/expire/",
                wrap(self.key_change_view),
                {"change": "expire"},
                name=f"{info}_key_expire",
            ),
            path("<str:alias>/<slug:action>/", wrap(self.action_view), name=f"{info}_action"),
        ]

    def stats_view(self, request: HttpRequest) -> HttpResponse:
        return views.stats_page(request, self)

    def keys_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        return browser.key_list(request, self, alias)

    def key_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        return browser.key_detail(request, self, alias)

    def key_change_view(self, request: HttpRequest, alias: str, change: str) -> HttpResponse:
        return browser.key_change(request, self, alias, change)

    def action_view(self, request: HttpRequest, alias: str, action: str) -> HttpResponse:
        return views.action(request, self, alias, action)


admin.site.register(CacheAlias, CacheAliasAdmin)
