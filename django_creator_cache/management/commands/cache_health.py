"""``manage.py cache_health``: ping each cache alias; exit 0 when all answer, 1 otherwise.

Made for probes (Kubernetes exec probes, cron, monitoring): one line per
alias, ``--json`` for machines, ``--alias`` to check only some. Each alias is
pinged on a fresh connection with ``CACHE_HEALTH_TIMEOUT`` and
``CACHE_HEALTH_RETRIES``, so a dead server answers within a bounded time.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from ... import health
from ..aliases import AliasCommand


class Command(AliasCommand):
    help = "Check that every cache alias answers (exit status 0) or not (exit status 1)."

    def handle(self, *args: Any, **options: Any) -> None:
        found = self.aliases(options)
        results = {}
        for alias, cache in found:
            checked = health.check(cache)
            results[alias] = {
                "healthy": bool(checked["healthy"]),
                "latency_ms": checked["latency_ms"],
                "error": checked["error"],
                "location": cache.options.safe_location,
            }
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2, sort_keys=True))
        else:
            width = max(len(alias) for alias in results)
            for alias, result in results.items():
                if result["healthy"]:
                    line = f"{alias:<{width}}  {self.style.SUCCESS('healthy')}  "
                    self.stdout.write(f"{line}{result['latency_ms']:.2f} ms")
                else:
                    line = f"{alias:<{width}}  {self.style.ERROR('UNHEALTHY')}  "
                    self.stdout.write(f"{line}{result['location']}: {result['error']}")
        unhealthy = [alias for alias, result in results.items() if not result["healthy"]]
        if unhealthy:
            raise CommandError(
                f"{len(unhealthy)} of {len(results)} cache(s) unhealthy: {', '.join(unhealthy)}",
                returncode=1,
            )
