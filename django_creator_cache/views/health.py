"""``health/cache/``: the anonymous health endpoint for load balancers.

JSON per alias (healthy, latency, the error's class name), 200 when every
alias answers and 503 when one does not. No authentication, so nothing an
anonymous caller should not see: no location, address, port or error detail.
Cheap whatever the request rate: each answer is kept about a second per
process, an open circuit answers at once, and a probe is bounded by
``CACHE_HEALTH_TIMEOUT`` (see ``health.public_check``).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..health import our_caches, public_check


@never_cache
@require_GET
def health(request: HttpRequest, alias: str | None = None) -> JsonResponse:
    """``{"healthy": bool, "caches": {alias: {healthy, latency_ms, error}}}``; 200 or 503."""
    try:
        found = our_caches([alias] if alias is not None else None)
    except KeyError:
        raise Http404("no such cache") from None
    results: dict[str, dict[str, Any]] = {name: public_check(cache) for name, cache in found}
    healthy = all(result["healthy"] for result in results.values())
    return JsonResponse({"healthy": healthy, "caches": results}, status=200 if healthy else 503)
