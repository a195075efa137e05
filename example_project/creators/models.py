"""The creator promotion platform: campaigns, the promoters who post them, what they earn."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class Platform(models.TextChoices):
    TIKTOK = "tiktok", "TikTok"
    INSTAGRAM = "instagram", "Instagram"
    YOUTUBE = "youtube", "YouTube"


class Campaign(models.Model):
    """What a creator pays promoters to post, on one platform."""

    Platform = Platform

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"

    creator_name = models.CharField(max_length=100)
    platform = models.CharField(max_length=20, choices=Platform.choices)
    budget = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.creator_name} on {self.get_platform_display()}"


class Promoter(models.Model):
    """Someone who posts campaigns on their account."""

    handle = models.CharField(max_length=60, unique=True)
    platform = models.CharField(max_length=20, choices=Platform.choices)
    followers = models.PositiveIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("handle",)

    def __str__(self) -> str:
        return f"@{self.handle}"


class ViewSnapshot(models.Model):
    """Engagement of one promoter's post of one campaign, as read at ``taken_at``."""

    promoter = models.ForeignKey(Promoter, on_delete=models.CASCADE, related_name="snapshots")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="snapshots")
    views = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    comments = models.PositiveIntegerField(default=0)
    shares = models.PositiveIntegerField(default=0)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ("-taken_at", "-id")
        indexes = (models.Index(fields=("campaign", "promoter", "taken_at")),)

    def __str__(self) -> str:
        return f"{self.promoter} / campaign {self.campaign_id}: {self.views} views"


class Payout(models.Model):
    """The payouts of one day."""

    date = models.DateField(unique=True)
    amount = models.DecimalField(
        max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    processed_count = models.PositiveIntegerField(default=0)
    pending_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-date",)

    def __str__(self) -> str:
        return f"{self.date}: {self.amount}"
