"""Who an authenticated account is, as text: one rule for page keys and rate-limit keys.

Accounts of two models may share a primary key (a ``User`` and a service account that a
token middleware put on ``request.user``): they are told apart by the model's label (a
class's dotted name when the account is not a model). Accounts of the project's user
model (``AUTH_USER_MODEL``) are named by their primary key alone.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def account_name(user: Any) -> str | None:
    """``<pk>`` for the project's user model, ``<kind>:<pk>`` for another, or
    ``<kind>:name:<username>`` without a pk; None when there is neither."""
    meta = getattr(user, "_meta", None)
    kind = getattr(meta, "label_lower", None)
    if not isinstance(kind, str):
        cls = user.__class__  # a lazy user's: the wrapped object's class
        kind = f"{cls.__module__}.{cls.__qualname__}"
    pk = getattr(user, "pk", None)
    if pk is not None:
        return str(pk) if kind == settings.AUTH_USER_MODEL.lower() else f"{kind}:{pk}"
    get_username = getattr(user, "get_username", None)
    username = get_username() if callable(get_username) else None
    return f"{kind}:name:{username}" if username else None
