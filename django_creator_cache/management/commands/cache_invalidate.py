"""``manage.py cache_invalidate``: invalidate by prefix, by tag or by a model's rules.

The same entry points as code: ``cache.invalidate_prefix``, ``cache.invalidate_tags``
and ``invalidation.models.invalidate_model``. Every argument is checked before
anything is deleted, so a typo invalidates nothing; the output says what went
and how many entries; errors exit non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction
from django.db.models import Model

from ...backend.cache import RedisCache
from ...exceptions import CacheError, CacheUnavailable
from ...health import check
from ...invalidation import index
from ...invalidation import models as model_rules
from ...invalidation.transaction import cache_invalidated


@dataclass(frozen=True)
class _ModelTarget:
    """A model given with ``--model``, its label, and what its rules name without instances."""

    model: type[Model]
    label: str
    rules: tuple[model_rules.InvalidationRule[Any], ...]


class Command(BaseCommand):
    help = (
        "Invalidate cache entries by prefix, by tag, or by a model's invalidate_on() rules, "
        "as cache.invalidate_prefix / invalidate_tags / invalidate_model do."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--prefix",
            action="append",
            default=[],
            metavar="PREFIX",
            help="invalidate every entry under this prefix, e.g. campaigns or views:campaign-list "
            "(repeat for more)",
        )
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            metavar="TAG",
            help="invalidate every entry written with this tag (repeat for more)",
        )
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="APP_LABEL.MODEL",
            help="invalidate what the model's invalidate_on() rules declare (their static "
            "prefixes and tags), in the caches the rules name (repeat for more)",
        )
        parser.add_argument(
            "--cache",
            default="default",
            metavar="ALIAS",
            help="the CACHES alias for --prefix and --tag (default: 'default')",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="delete nothing; show how many entries each index holds now (an upper bound)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        prefixes: list[str] = options["prefix"]
        tags: list[str] = options["tag"]
        labels: list[str] = options["model"]
        dry_run: bool = options["dry_run"]
        if not (prefixes or tags or labels):
            raise CommandError("nothing to invalidate: give --prefix, --tag or --model")
        # Everything is checked first: a wrong argument must not leave half the work done.
        alias: str = options["cache"]
        cache = _our_cache(alias) if prefixes or tags else None
        if cache is not None:
            prefixes = [_checked_prefix(cache, prefix) for prefix in prefixes]
        if any(not tag for tag in tags):
            raise CommandError("--tag must not be empty")
        targets = [_model_target(label) for label in labels]
        used = {alias: cache} if cache is not None else {}
        for target in targets:
            for rule in target.rules:
                used.setdefault(rule.cache, _our_cache(rule.cache))
        for name, each in used.items():
            health = check(each)
            if not health["healthy"]:
                raise CommandError(
                    f"cache {name!r} is unavailable ({health['error']}): nothing was invalidated"
                )

        if dry_run:
            self.stdout.write("Dry run: nothing is deleted; counts are what the indexes hold now.")
        total = 0
        self._at_commit = False
        if cache is not None:
            for prefix in prefixes:
                total += self._invalidate(alias, cache, index.PREFIX, prefix, dry_run)
            for tag in tags:
                total += self._invalidate(alias, cache, index.TAG, tag, dry_run)
        for target in targets:
            total += self._invalidate_model(target, used, dry_run)
        if dry_run:
            self.stdout.write(f"Would invalidate up to {_entries(total)}.")
        elif self._at_commit:
            self.stdout.write(
                self.style.SUCCESS(f"Invalidated {_entries(total)}; the rest at the commit.")
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Invalidated {_entries(total)}."))

    def _invalidate(
        self, alias: str, cache: RedisCache, kind: str, name: str, dry_run: bool
    ) -> int:
        """Invalidate (or count) one prefix (``kind`` "p") or tag ("t"); returns the entries."""
        head = f"cache {alias!r}: {'prefix' if kind == index.PREFIX else 'tag'} {name!r}"
        if kind == index.PREFIX and not cache.tracks_prefix(name):
            self.stdout.write(
                self.style.WARNING(f"{head}: TRACK_WRITES is off, so this scans the keyspace")
            )
        if dry_run:
            count = _indexed(alias, cache, kind, name)
            self.stdout.write(f"{head}: up to {_entries(count)}")
            return count
        try:
            if kind == index.PREFIX:
                count = cache.invalidate_prefix(name)
            else:
                count = cache.invalidate_tags(name)
        except CacheUnavailable as exc:
            raise CommandError(
                f"{head}: Redis failed during the invalidation ({type(exc.cause).__name__}); "
                "run it again"
            ) from exc
        except (CacheError, ValueError) as exc:
            raise CommandError(f"{head}: {exc}") from exc
        self.stdout.write(f"{head}: {_entries(count)}")
        return count

    def _invalidate_model(
        self, target: _ModelTarget, used: dict[str, RedisCache], dry_run: bool
    ) -> int:
        """Run ``invalidate_model`` (or count what it would take); report per rule."""
        for rule in target.rules:
            if callable(rule.tags):
                self.stdout.write(
                    f"model {target.label} (cache {rule.cache!r}): its tags are computed from "
                    "instances and are not invalidated here; give them with --tag"
                )
        if dry_run:
            total = 0
            for rule in target.rules:
                cache = used[rule.cache]
                prefixes, tags = rule.targets(())
                count = sum(_indexed(rule.cache, cache, index.PREFIX, p) for p in prefixes)
                count += sum(_indexed(rule.cache, cache, index.TAG, t) for t in tags)
                described = _describe(target, rule.cache, prefixes, tags)
                self.stdout.write(f"{described}: up to {_entries(count)}")
                total += count
            return total

        using = router.db_for_write(target.model)
        if transaction.get_connection(using).in_atomic_block:
            # Called from code inside a transaction (a data migration, say): the
            # invalidation runs when it commits, as for a save.
            model_rules.invalidate_model(target.model, using=using)
            for rule in target.rules:
                described = _describe(target, rule.cache, *rule.targets(()))
                self.stdout.write(f"{described}: at the commit of database {using!r}")
            self._at_commit = True
            return 0
        sent: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            sent.append(kwargs)

        cache_invalidated.connect(receiver, sender=target.model, weak=False)
        try:
            model_rules.invalidate_model(target.model, using=using)
        except CacheUnavailable as exc:
            raise CommandError(
                f"model {target.label}: Redis failed during the invalidation in cache "
                f"{exc.alias!r} ({type(exc.cause).__name__}); run it again"
            ) from exc
        except (CacheError, ValueError, LookupError) as exc:
            raise CommandError(f"model {target.label}: {exc}") from exc
        finally:
            cache_invalidated.disconnect(receiver, sender=target.model)
        ran = {report["alias"] for report in sent}
        missing = [rule.cache for rule in target.rules if rule.cache not in ran]
        if missing:
            raise CommandError(
                f"model {target.label}: the invalidation in cache(s) "
                f"{', '.join(map(repr, missing))} did not run (see the log): Redis failed "
                "during the invalidation or refused it; run it again"
            )
        total = 0
        for report in sent:
            deleted = int(report["deleted"])
            described = _describe(target, report["alias"], report["prefixes"], report["tags"])
            self.stdout.write(f"{described}: {_entries(deleted)}")
            total += deleted
        return total


def _our_cache(alias: str) -> RedisCache:
    """``caches[alias]``, or a ``CommandError`` if it is unknown or not our backend."""
    if alias not in settings.CACHES:
        known = ", ".join(repr(name) for name in settings.CACHES) or "none"
        raise CommandError(f"unknown cache alias {alias!r} (CACHES has {known})")
    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        raise CommandError(
            f"CACHES[{alias!r}] is a {type(cache).__name__}, which cannot invalidate by prefix "
            "or tag; use django_creator_cache.backend.RedisCache"
        )
    return cache


def _checked_prefix(cache: RedisCache, prefix: str) -> str:
    """``prefix`` as ``invalidate_prefix`` reads it; the errors it would raise, raised now."""
    if not prefix:
        raise CommandError(f"--prefix {prefix!r} is empty: that would be everything")
    try:
        index.checked_prefix(prefix, cache.key_separator)
    except ValueError as exc:
        raise CommandError(f"--prefix {prefix!r}: {exc}") from exc
    return prefix


def _model_target(label: str) -> _ModelTarget:
    """The model ``app_label.Model`` and its rules, or a ``CommandError`` that says why not."""
    ruled = sorted(model._meta.label for model in model_rules._rules)
    hint = f"models with invalidate_on() rules: {', '.join(ruled) or 'none'}"
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise CommandError(f"unknown model {label!r}: use app_label.Model ({hint})") from None
    rules = tuple(model_rules._rules.get(model, {}).values())
    if not rules:
        raise CommandError(f"{model._meta.label} has no invalidate_on() rule ({hint})")
    if any(callable(rule.prefixes) for rule in rules):
        raise CommandError(
            f"{model._meta.label}: its prefixes are computed from instances, so there is "
            "nothing to invalidate without them; use --prefix and --tag"
        )
    return _ModelTarget(model, model._meta.label, rules)


def _describe(target: _ModelTarget, alias: str, prefixes: Any, tags: Any) -> str:
    names = [f"prefix {p!r}" for p in prefixes] + [f"tag {t!r}" for t in tags]
    return f"cache {alias!r}: model {target.label} ({', '.join(names) or 'nothing'})"


def _indexed(alias: str, cache: RedisCache, kind: str, name: str) -> int:
    """Members of one prefix or tag index: what invalidating it would take at most (some
    may have expired or been deleted since they were indexed)."""
    try:
        return int(cache.index_size(name, kind))
    except CacheUnavailable as exc:
        raise CommandError(
            f"cache {alias!r}: cannot read the index of {name!r}: {exc.cause}"
        ) from exc


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"
