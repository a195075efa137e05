"""``manage.py cache_warm``: run the registered cache warmers, showing progress.

Every warmer runs even when another fails; the summary lists keys, failures
and time per warmer, and the command exits non-zero if any warmer failed.
"""

from __future__ import annotations

import functools
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import warming


class Command(BaseCommand):
    help = "Fill the cache from the registered warmers (@warmer in <app>/cache_warmers.py)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--only",
            action="append",
            metavar="NAME",
            default=[],
            help="run only this warmer (repeat, or separate names with commas)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list how many keys each warmer would write; fetch and write nothing",
        )
        parser.add_argument("--list", action="store_true", help="list the warmers and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        registered = warming.warmers()
        if options["list"]:
            for name, item in registered.items():
                self.stdout.write(f"{name}  (cache {item.alias!r}) {item.description}".rstrip())
            return
        selected = self._select(registered, options["only"])
        dry_run: bool = options["dry_run"]
        verb = "Listing keys of" if dry_run else "Warming"
        self.stdout.write(f"{verb} {len(selected)} warmer(s)")
        results = []
        for number, item in enumerate(selected, 1):
            head = f"[{number}/{len(selected)}] {item.name}"
            self._show_progress(head, warming.WarmResult(item.name))
            result = warming.run(
                item, dry_run=dry_run, progress=functools.partial(self._show_progress, head)
            )
            self._show_done(head, result)
            results.append(result)
        self._summary(results, dry_run)
        failed = [r.name for r in results if not r.ok]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} warmer(s) failed: {', '.join(failed)}"
            )

    def _select(
        self, registered: dict[str, warming.Warmer], only: list[str]
    ) -> list[warming.Warmer]:
        names = [name.strip() for value in only for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in registered]
        if unknown:
            known = ", ".join(registered) or "none registered"
            raise CommandError(f"unknown warmer(s): {', '.join(unknown)} (known: {known})")
        if not registered:
            raise CommandError(
                "no cache warmers registered: decorate functions with "
                "@django_creator_cache.warming.warmer in <app>/cache_warmers.py"
            )
        return [registered[name] for name in names] if names else list(registered.values())

    def _show_progress(self, head: str, result: warming.WarmResult) -> None:
        """A live counter on a terminal; nothing when the output is a file or pipe."""
        if self.stdout.isatty():
            self.stdout.write(f"\r{head} ... {result.keys} keys", ending="")
            self.stdout.flush()

    def _show_done(self, head: str, result: warming.WarmResult) -> None:
        prefix = "\r" if self.stdout.isatty() else ""
        counts = f"{result.keys} keys, {result.failures} failed, {result.seconds:.2f} s"
        line = f"{prefix}{head} ... {counts}"
        if result.ok:
            self.stdout.write(self.style.SUCCESS(line))
            return
        self.stdout.write(self.style.ERROR(f"{line}  FAILED {result.error}".rstrip()))
        for key in result.failed_keys[:10]:
            self.stdout.write(f"    failed key: {key}")

    def _summary(self, results: list[warming.WarmResult], dry_run: bool) -> None:
        width = max([len("warmer"), *(len(r.name) for r in results)])
        self.stdout.write("")
        self.stdout.write(f"{'warmer':<{width}}  {'keys':>6}  {'failures':>8}  {'time':>8}  status")
        for r in results:
            status = ("dry run" if dry_run else "ok") if r.ok else "FAILED"
            self.stdout.write(
                f"{r.name:<{width}}  {r.keys:>6}  {r.failures:>8}  {r.seconds:>6.2f} s  {status}"
            )
        keys = sum(r.keys for r in results)
        failures = sum(r.failures for r in results)
        self.stdout.write(f"total: {keys} keys, {failures} failures")
