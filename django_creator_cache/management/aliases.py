"""What the per-alias commands (``cache_stats``, ``cache_health``) share: ``--alias`` and
``--json``, and the aliases on this backend they apply to."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from .. import health
from ..backend.cache import RedisCache


class AliasCommand(BaseCommand):
    """A command over every cache alias on this backend (or those given with ``--alias``)."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--alias",
            action="append",
            default=[],
            metavar="ALIAS",
            help="only this alias (repeat for more); default: every alias on this backend",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def aliases(self, options: dict[str, Any]) -> list[tuple[str, RedisCache]]:
        """(alias, backend) pairs asked for; a ``CommandError`` for an unknown or foreign one."""
        try:
            found = health.our_caches(options["alias"] or None)
        except KeyError as exc:
            raise CommandError(exc.args[0]) from None
        if not found:
            raise CommandError("no cache alias in CACHES uses django_creator_cache's RedisCache")
        return found
