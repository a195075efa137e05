"""App configuration: registers the system checks and the settings hook."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoCreatorCacheConfig(AppConfig):
    name = "django_creator_cache"
    verbose_name = "Creator cache"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, history, signals, warming
        from .backend import metrics

        checks.register()
        metrics.when_enabled(_register_exporter)  # CACHE_METRICS: the Prometheus collector
        signals.connect()
        history.connect()  # each process's stats flusher samples the admin page's chart
        warming.autodiscover()  # <app>/cache_warmers.py register their @warmer functions


def _register_exporter() -> None:
    """Register the Prometheus collector (once); prometheus_client must be installed."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        from . import metrics
    except ImportError as exc:
        raise ImproperlyConfigured(
            "CACHE_METRICS needs prometheus_client: pip install 'django-creator-cache[prometheus]'"
        ) from exc
    metrics.register()
