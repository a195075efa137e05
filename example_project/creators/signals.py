"""Drop a day's cached payout summary (payouts manager) when its row changes, at commit."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .models import Payout
from .services import forget_payout


def _payout_changed(sender: type[Payout], instance: Payout, using: str, **kwargs: Any) -> None:
    transaction.on_commit(partial(forget_payout, instance.date), using=using)


def connect() -> None:
    post_save.connect(_payout_changed, sender=Payout, dispatch_uid="creators.payout_saved")
    post_delete.connect(_payout_changed, sender=Payout, dispatch_uid="creators.payout_deleted")
