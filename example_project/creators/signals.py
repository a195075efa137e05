"""Drop the cached campaign list when a campaign changes, once the change is committed."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .models import Campaign
from .services import invalidate_campaigns


def _campaign_changed(sender: type[Campaign], **kwargs: Any) -> None:
    transaction.on_commit(invalidate_campaigns)


def connect() -> None:
    post_save.connect(_campaign_changed, sender=Campaign, dispatch_uid="creators.campaign_saved")
    post_delete.connect(
        _campaign_changed, sender=Campaign, dispatch_uid="creators.campaign_deleted"
    )
