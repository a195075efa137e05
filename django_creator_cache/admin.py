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

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[CacheAlias]
else:  # not subscriptable at run time
    _ModelAdmin = admin.ModelAdmin


class CacheAliasAdmin(_ModelAdmin):
    """Stats page at the change list URL; actions at ``<alias>/<action>/``."""

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
            path("<str:alias>/<slug:action>/", wrap(self.action_view), name=f"{info}_action"),
        ]

    def stats_view(self, request: HttpRequest) -> HttpResponse:
        return views.stats_page(request, self)

    def action_view(self, request: HttpRequest, alias: str, action: str) -> HttpResponse:
        return views.action(request, self, alias, action)


admin.site.register(CacheAlias, CacheAliasAdmin)
