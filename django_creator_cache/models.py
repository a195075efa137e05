"""``CacheAlias``: no table, only an anchor for the admin stats page and its permission.

The model is unmanaged (nothing is ever stored); registering it in the admin puts
"Cache statistics" on the admin index, and its ``Meta.permissions`` defines
``django_creator_cache.manage_cache``, which the stats page, its actions and the key
browser require, and ``django_creator_cache.view_cache_values``, which the key browser
also requires to show values (they may hold personal data).
"""

from __future__ import annotations

from django.db import models

MANAGE_PERMISSION = "django_creator_cache.manage_cache"
VIEW_VALUES_PERMISSION = "django_creator_cache.view_cache_values"


class CacheAlias(models.Model):
    """One ``CACHES`` alias, as the admin and its log of actions name it."""

    alias = models.CharField(max_length=100, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("manage_cache", "Can view cache statistics and invalidate or clear cache entries"),
            ("view_cache_values", "Can see the values stored in the cache (key browser)"),
        )
        verbose_name = "cache alias"
        verbose_name_plural = "cache statistics"

    def __str__(self) -> str:
        return self.alias
