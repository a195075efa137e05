"""``metrics_view``: prometheus_client's default registry in the Prometheus text format.

Not in ``urls.py``: route it yourself (``path("metrics/", metrics_view)``) and restrict
it as you would any internal page (staff, an IP allow-list at the proxy, a separate
port): it names your aliases, operations and rate-limit groups. A 404 while
``CACHE_METRICS`` is off. Projects that already export the registry (django-prometheus's
``/metrics``) need no view of ours: the cache metrics are in it.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import conf


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Every metric of the default registry (ours and any other), in the format the
    scraper's ``Accept`` header asks for (OpenMetrics or the classic text format)."""
    if not conf.read("CACHE_METRICS"):
        raise Http404("CACHE_METRICS is off")
    from prometheus_client import REGISTRY
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(REGISTRY), content_type=content_type)
