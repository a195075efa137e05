"""``python manage.py create_demo_user``: the local demo's staff user, ``demo`` / ``demo``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = PASSWORD = "demo"


class Command(BaseCommand):
    help = "Create the superuser demo (password demo) if missing. For local use only."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if user_model._default_manager.filter(username=USERNAME).exists():
            self.stdout.write(f"The demo user {USERNAME!r} exists already.")
            return
        user_model.objects.create_superuser(USERNAME, "demo@example.com", PASSWORD)
        self.stdout.write(
            f"Created the superuser {USERNAME!r}, password {PASSWORD!r} (local use only)."
        )
