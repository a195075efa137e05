"""``manage.py cache_keys``: list an alias's keys matching a pattern, a bounded number.

Keys are found with SCAN (``iter_keys``, every primary of a Cluster), never
KEYS, and the listing stops after ``--limit`` keys (100), so it is safe on a
big production database. Patterns are globs on the keys as the application
wrote them: the alias's ``KEY_PREFIX`` and version are added for you.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import health


class Command(BaseCommand):
    help = "List keys of a cache alias matching a glob pattern (SCAN, at most --limit keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", default="default", help="cache alias (default: default)")
        parser.add_argument(
            "--pattern",
            default="*",
            help="glob on the application's keys, e.g. 'campaigns:*' (default: '*')",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="stop after this many keys (default: 100)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias: str = options["alias"]
        limit: int = options["limit"]
        if limit < 1:
            raise CommandError(f"--limit must be at least 1, got {limit}")
        try:
            ((_, cache),) = health.our_caches([alias])
        except KeyError as exc:
            raise CommandError(exc.args[0]) from None
        checked = health.check(cache)
        if not checked["healthy"]:
            raise CommandError(
                f"cache {alias!r} ({cache.options.safe_location}) is unavailable: "
                f"{checked['error']}",
                returncode=1,
            )
        shown = 0
        more = False
        for key in cache.iter_keys(options["pattern"], itersize=min(max(limit, 10), 1000)):
            if shown >= limit:
                more = True
                break
            self.stdout.write(key)
            shown += 1
        where = f"cache {alias!r}, pattern {options['pattern']!r}"
        if more:
            self.stderr.write(f"{shown} keys shown ({where}); stopped at --limit {limit}")
        else:
            self.stderr.write(f"{shown} key{'' if shown == 1 else 's'} ({where})")
