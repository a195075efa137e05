"""Campaigns and the promoters who post them (a many-to-many, declared on Promoter)."""

from __future__ import annotations

from django.db import models

from django_creator_cache.invalidation.models import InvalidatingManager, InvalidatingQuerySet


class Campaign(models.Model):
    name = models.CharField(max_length=100)
    owner = models.CharField(max_length=50, default="")
    budget = models.IntegerField(default=0)

    objects = InvalidatingManager()

    def __str__(self) -> str:
        return self.name


class Promoter(models.Model):
    handle = models.CharField(max_length=100)
    campaigns = models.ManyToManyField(Campaign, related_name="promoters", blank=True)

    objects = InvalidatingQuerySet.as_manager()

    def __str__(self) -> str:
        return self.handle
