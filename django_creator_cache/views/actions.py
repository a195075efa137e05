"""The admin page's actions: their forms, their words and what each one does.

Each ``Action`` runs against one alias and returns the success message, or
raises ``ValueError`` to refuse (shown to the user as an error message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms

if TYPE_CHECKING:
    from ..backend.cache import RedisCache


class PrefixForm(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Added here: a class attribute "prefix" would shadow the form's own ``prefix``.
        self.fields["prefix"] = forms.CharField(
            max_length=200, help_text="e.g. campaigns or campaigns:42"
        )


class TagForm(forms.Form):
    tag = forms.CharField(max_length=200, help_text="e.g. campaign:42")


class ClearForm(forms.Form):
    pass


@dataclass(frozen=True)
class Action:
    """One of the page's actions: its form, its words and what it does."""

    slug: str
    title: str
    form_class: type[forms.Form]
    run: Callable[[RedisCache, str, dict[str, Any]], str]
    """Does it; returns the success message (raises ``ValueError`` to refuse)."""


def _invalidate_prefix(cache: RedisCache, alias: str, data: dict[str, Any]) -> str:
    count = cache.invalidate_prefix(data["prefix"])
    return f"Invalidated prefix {data['prefix']!r} on cache {alias!r}: {count} entries deleted."


def _invalidate_tag(cache: RedisCache, alias: str, data: dict[str, Any]) -> str:
    count = cache.invalidate_tags(data["tag"])
    return f"Invalidated tag {data['tag']!r} on cache {alias!r}: {count} entries deleted."


def _clear(cache: RedisCache, alias: str, data: dict[str, Any]) -> str:
    refusal = clear_refusal(cache, alias)
    if refusal:
        raise ValueError(refusal)
    if not cache.clear():
        raise ValueError(f"Cache {alias!r} did not answer: nothing was cleared.")
    head = f"{cache.key_prefix}{cache.key_separator}"
    return f"Cleared cache {alias!r}: every key under {head!r} was deleted."


ACTIONS = {
    action.slug: action
    for action in (
        Action("invalidate-prefix", "Invalidate a prefix", PrefixForm, _invalidate_prefix),
        Action("invalidate-tag", "Invalidate a tag", TagForm, _invalidate_tag),
        Action("clear", "Clear this alias's keys", ClearForm, _clear),
    )
}


def clear_refusal(cache: RedisCache, alias: str) -> str | None:
    """Why "clear" is refused on ``cache``'s alias, or None when it is allowed."""
    if cache.key_prefix:
        return None
    return (
        f"Cache {alias!r} has no KEY_PREFIX, so clearing it would empty the whole "
        "Redis database (FLUSHDB), including data of anything else that shares the server. "
        "Set a KEY_PREFIX for this alias to be able to clear only its keys, or invalidate "
        "by prefix or tag instead."
    )
