"""App configuration: registers the system checks and the settings hook."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoCreatorCacheConfig(AppConfig):
    name = "django_creator_cache"
    verbose_name = "Creator cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, history, signals, warming

        checks.register()
        signals.connect()
        history.connect()  # each process's stats flusher samples the admin page's chart
        warming.autodiscover()  # <app>/cache_warmers.py register their @warmer functions
