"""Invalidation from models, declared once: "when a Campaign changes, drop these entries".

``invalidate_on(Campaign, prefixes=[...], tags=...)`` (in ``AppConfig.ready``)
connects receivers for ``post_save``, ``post_delete`` and ``m2m_changed`` (every
many-to-many relation of the model, changed from either side). Each receiver
computes the prefixes and tags from the instance when the signal fires (its pk
is still set in ``post_delete``) and invalidates them when the transaction
commits (``transaction.schedule``). When a rule computes names, a save also
invalidates those of the row as it was (read in ``pre_save``, one SELECT), so a
row that moves from one owner to another leaves neither owner's entries stale.

Writes that send no signals (``QuerySet.update``, ``bulk_create``,
``bulk_update``) go through ``InvalidatingQuerySet``/``InvalidatingManager``, or
call ``invalidate_model`` after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.models import Manager, ManyToManyField, ManyToManyRel, Model, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from .transaction import cache_invalidated, no_invalidation, schedule, suppressed

__all__ = [
    "InvalidatingManager",
    "InvalidatingQuerySet",
    "InvalidationRule",
    "cache_invalidated",
    "invalidate_model",
    "invalidate_on",
    "no_invalidation",
]

M = TypeVar("M", bound=Model)
Names = Iterable[str] | Callable[[M], Iterable[str]]

_UID = "django_creator_cache.invalidation"
# Where a save's receivers keep the row as it was before the save (on the instance).
_BEFORE = "_dcc_row_before_save"
# m2m_changed actions that change rows. A clear is handled before it runs, while
# the rows it removes (and so the objects it affects) can still be read.
_M2M_ACTIONS = frozenset({"post_add", "post_remove", "pre_clear"})
# model -> cache alias -> its rule; filled by invalidate_on, read by the receivers.
_rules: dict[type[Model], dict[str, InvalidationRule[Any]]] = {}


@dataclass(frozen=True)
class InvalidationRule(Generic[M]):
    """What to invalidate in one cache when an instance of ``model`` changes."""

    model: type[M]
    prefixes: tuple[str, ...] | Callable[[M], Iterable[str]]
    tags: tuple[str, ...] | Callable[[M], Iterable[str]]
    cache: str

    @property
    def needs_instances(self) -> bool:
        """Whether prefixes or tags are computed from the instances (else never read)."""
        return callable(self.prefixes) or callable(self.tags)

    def targets(self, instances: Iterable[M]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The prefixes and tags to invalidate for ``instances``, without duplicates."""
        objects = list(instances) if self.needs_instances else []
        return _names(self.prefixes, objects), _names(self.tags, objects)


def invalidate_on(
    model: type[M],
    *,
    prefixes: Names[M] = (),
    tags: Names[M] = (),
    cache: str = "default",
) -> InvalidationRule[M]:
    """Invalidate ``prefixes`` and ``tags`` in ``cache`` after every committed change of ``model``.

    Each of ``prefixes``/``tags`` is a list of strings or a function of the
    instance returning them (``tags=lambda c: [f"campaign:{c.pk}"]``). Changes
    are saves, deletes (also through ``QuerySet.delete``) and many-to-many
    changes from either side. Call it in ``AppConfig.ready()``; calling it again
    for the same model and cache replaces the rule (receivers are connected once).
    Every prefix is tracked by the writes themselves: nothing else to declare.
    """
    if not (isinstance(model, type) and issubclass(model, Model)) or model._meta.abstract:
        raise TypeError(f"invalidate_on() needs a concrete model class, got {model!r}")
    if cache not in settings.CACHES:
        raise ImproperlyConfigured(
            f"invalidate_on({model._meta.label}): no cache {cache!r} in settings.CACHES"
        )
    rule = InvalidationRule(model, _spec(prefixes, "prefixes"), _spec(tags, "tags"), cache)
    if rule.prefixes == () and rule.tags == ():
        raise ValueError(f"invalidate_on({model._meta.label}): give prefixes, tags or both")
    _rules.setdefault(model, {})[cache] = rule
    pre_save.connect(_before_save, sender=model, dispatch_uid=_UID)
    post_save.connect(_on_save, sender=model, dispatch_uid=_UID)
    post_delete.connect(_on_delete, sender=model, dispatch_uid=_UID)
    for through in _through_models(model):
        m2m_changed.connect(_on_m2m_changed, sender=through, dispatch_uid=_UID)
    return rule


def invalidate_model(
    model: type[M], instances: Iterable[M] = (), *, using: str | None = None
) -> None:
    """Invalidate what ``model``'s rules declare, at commit of ``using`` (now in autocommit).

    The declared static prefixes and tags always; computed ones (functions of
    the instance) for ``instances``. For writes that send no signals, e.g.
    ``Campaign.objects.filter(...).update(...)`` or ``bulk_create``.
    """
    rules = _rules_of(model)
    objects = list(instances)
    if not objects and any(callable(rule.prefixes) for rule in rules):
        raise ValueError(
            f"invalidate_model({model._meta.label}): its prefixes are computed from "
            "instances; pass the instances that changed"
        )
    _schedule(model, objects, using or router.db_for_write(model))


class InvalidatingQuerySet(QuerySet[M]):
    """A QuerySet whose ``update``, ``bulk_create`` and ``bulk_update`` invalidate at commit.

    Those send no signals, so ``invalidate_on`` alone cannot see them. Use
    ``objects = InvalidatingManager()`` or ``objects = InvalidatingQuerySet.as_manager()``.
    When the model's rules compute names from instances, ``update`` reads the rows it
    changes before and after (two SELECTs) and invalidates the names of both.
    """

    def update(self, **kwargs: Any) -> int:
        rules = _rules_of(self.model)  # before writing: a missing rule is a bug, say so
        before = list(self) if any(rule.needs_instances for rule in rules) else []
        rows = super().update(**kwargs)  # marks the queryset for write: self.db is the writer
        if rows:
            # Names of the rows as they were and as they are (an owner moved: both lists).
            changed = [obj.pk for obj in before]
            after = list(self.model._base_manager.using(self.db).filter(pk__in=changed))
            _schedule(self.model, [*before, *after], self.db)
        return rows

    def bulk_create(self, objs: Iterable[M], *args: Any, **kwargs: Any) -> list[M]:
        _rules_of(self.model)
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            _schedule(self.model, created, self.db)
        return created

    def bulk_update(
        self, objs: Iterable[M], fields: Iterable[str], *args: Any, **kwargs: Any
    ) -> int:
        _rules_of(self.model)
        objects = list(objs)
        rows = super().bulk_update(objects, fields, *args, **kwargs)
        if rows:
            _schedule(self.model, objects, self.db)
        return rows


class InvalidatingManager(Manager[M]):
    """The default manager with ``InvalidatingQuerySet``'s invalidating bulk writes."""

    _queryset_class = InvalidatingQuerySet


# -- receivers ---------------------------------------------------------------------


def _before_save(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    """The row as it is before a save changes it, when a rule computes names from it: the
    names it had are stale too (``owner:ann`` when the owner becomes bob). One SELECT."""
    if instance._state.adding or instance.pk is None or kwargs.get("raw"):
        return
    if any(rule.needs_instances for rule in _rules.get(sender, {}).values()):
        rows = sender._base_manager.using(using).filter(pk=instance.pk)
        instance.__dict__[_BEFORE] = rows.first()


def _on_save(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    _schedule(sender, [instance] if before is None else [instance, before], using)


def _on_delete(sender: type[Model], instance: Model, using: str, **kwargs: Any) -> None:
    _schedule(sender, [instance], using)


def _on_m2m_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    model: type[Model],
    pk_set: set[Any] | None,
    using: str,
    **kwargs: Any,
) -> None:
    """A relation changed: both the instance and the related objects changed."""
    if action not in _M2M_ACTIONS or (action != "pre_clear" and not pk_set):
        return
    if type(instance) in _rules:
        _schedule(type(instance), [instance], using)
    if model in _rules:
        related: Iterable[Model] = (
            _related(instance, sender, reverse)
            if pk_set is None
            else model._base_manager.using(using).filter(pk__in=pk_set)
        )
        _schedule(model, related, using)  # read only if the rule needs instances


# -- helpers -----------------------------------------------------------------------


def _schedule(model: type[Model], instances: Iterable[Model], using: str) -> None:
    if suppressed():
        return
    for rule in _rules.get(model, {}).values():
        prefixes, tags = rule.targets(instances)
        if prefixes or tags:
            schedule(model, rule.cache, prefixes, tags, using)


def _rules_of(model: type[Model]) -> list[InvalidationRule[Any]]:
    rules = list(_rules.get(model, {}).values())
    if not rules:
        raise LookupError(f"{model._meta.label} has no invalidate_on() rule")
    return rules


def _spec(names: Names[M], what: str) -> tuple[str, ...] | Callable[[M], Iterable[str]]:
    """A rule's prefixes or tags: a function, or a tuple of non-empty strings."""
    if callable(names):
        return names
    values = (names,) if isinstance(names, str) else tuple(names)
    if not all(isinstance(value, str) and value for value in values):
        raise TypeError(f"{what} must be non-empty strings or a function, got {names!r}")
    return values


def _names(
    spec: tuple[str, ...] | Callable[[M], Iterable[str]], objects: list[M]
) -> tuple[str, ...]:
    if not callable(spec):
        return spec
    return tuple(dict.fromkeys(str(name) for obj in objects for name in spec(obj)))


def _through_models(model: type[Model]) -> Iterator[type[Model]]:
    """The through models of every many-to-many relation of ``model``, either side."""
    for field in model._meta.get_fields(include_hidden=True):
        rel = field.remote_field if isinstance(field, ManyToManyField) else field
        if isinstance(rel, ManyToManyRel) and rel.through is not None:
            yield rel.through


def _related(instance: Model, through: type[Model], reverse: bool) -> QuerySet[Model]:
    """The objects related to ``instance`` through ``through`` (before a clear removes them)."""
    for field in type(instance)._meta.get_fields(include_hidden=True):
        forward = isinstance(field, ManyToManyField)
        rel = field.remote_field if forward else field
        if isinstance(rel, ManyToManyRel) and rel.through is through and forward != reverse:
            accessor = field.name if forward else rel.get_accessor_name()
            return getattr(instance, str(accessor)).all()  # type: ignore[no-any-return]
    raise LookupError(f"{type(instance).__name__} has no relation through {through.__name__}")
