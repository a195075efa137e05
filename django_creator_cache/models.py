"""``CacheAlias``: no table, only an anchor for the admin stats page and its permission.

The model is unmanaged (nothing is ever stored); registering it in the admin puts
"Cache statistics" on the admin index, and its ``Meta.permissions`` defines
``django_creator_cache.manage_cache``, which the stats page and its actions require.
"""

from __future__ import annotations

from django.db import models

MANAGE_PERMISSION = "django_creator_cache.manage_cache"


class CacheAlias(models.Model):
    """One ``CACHES`` alias, as the admin and its log of actions name it."""

    alias = models.CharField(max_length=100, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("manage_cache", "Can view cache statistics and invalidate or clear cache entries"),
        )
        verbose_name = "cache alias"
        verbose_name_plural = "cache statistics"

    def __str__(self) -> str:
        return self.alias
