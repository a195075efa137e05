"""What makes a page belong to one visitor, so it is never served to another.

Two questions, asked on every cacheable request:

* Before the view runs, who is the visitor? Every authenticated user the request
  carries: ``request.user`` (which a token or API-key middleware placed after
  ``AuthenticationMiddleware`` may have replaced) *and* the session's user
  (``request.auser()``), whichever path the view takes.
* After it rendered, did anything personal go into the page? Read while the view
  (and its template) ran: the session, the CSRF token, flash messages; and what the
  response says of itself: cookies, ``Cache-Control``, ``Vary``.

Some of that makes a page *personal*: kept per user under ``vary_on_user`` for an
authenticated visitor, never shared. The rest makes it *unstorable* for anyone:
replaying it would replay a cookie, a one-time message, a token or a write.
"""

from __future__ import annotations

import re
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import get_user as session_user
from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import get_max_age
from django.utils.functional import SimpleLazyObject, empty

from ..accounts import account_name

_COMMA = re.compile(r"\s*,\s*")  # between Cache-Control directives and Vary names
# Directives under which no shared or per-user copy may be kept.
_NEVER = frozenset({"no-store", "no-cache"})
# Vary names that mean "one visitor": the user key covers them under vary_on_user.
_PERSONAL_VARY = frozenset({"cookie", "authorization"})
# The module whose lazy ``request.user`` is the session's user (``AuthenticationMiddleware``).
_SESSION_USER_MODULE = "django.contrib.auth.middleware"


# -- who is the visitor ------------------------------------------------------------------


def users(request: HttpRequest) -> list[Any]:
    """The authenticated users ``request`` carries (sync views)."""
    found: list[Any] = []
    user = getattr(request, "user", None)
    if _sessionless(request, user):
        return found
    _add(found, user)
    if user is not None and not _is_session_lazy(user) and hasattr(request, "session"):
        # request.user was replaced: the session may still log someone in.
        _add(found, session_user(request))
    return found


async def ausers(request: HttpRequest) -> list[Any]:
    """The authenticated users ``request`` carries (async views): ``request.user``
    unless it is the session's own lazy user, and ``await request.auser()``.

    A lazy user of another middleware is evaluated in a thread (it may query the
    database); a plain object, or one already evaluated, is read as it is.
    """
    found: list[Any] = []
    user = getattr(request, "user", None)
    lazy = _unevaluated(user)
    session_lazy = lazy and _is_session_lazy(user)
    if not lazy:
        _add(found, user)
    elif not session_lazy:
        _add(found, await sync_to_async(_authenticated)(user))
    auser = getattr(request, "auser", None)
    if auser is not None:
        session = await auser()
        _add(found, session)
        if session_lazy:
            # The same user: a template's ``{{ user }}`` must not read the session
            # again during the render (that would read as personal).
            cast("SimpleLazyObject[Any]", user)._wrapped = session
    return found


def _sessionless(request: HttpRequest, user: Any) -> bool:
    """Whether ``request.user`` is the session's lazy user, not evaluated yet, and the
    session has no key and holds nothing: the visitor is anonymous, known without
    loading a session (what ``auth.get_user`` would find: no user id in it).

    The lazy user is then set to what it would have evaluated to (``AnonymousUser``), so
    a view reading ``request.user`` reads no session (that would make its page personal),
    and the session marked accessed, as evaluating the user would have:
    ``SessionMiddleware`` then adds ``Vary: Cookie``, so a shared cache downstream keeps
    this anonymous page apart from the pages of visitors who carry a session.
    """
    if type(user) is not SimpleLazyObject or user._wrapped is not empty:
        return False
    if not _is_session_lazy(user):
        return False
    session = getattr(request, "session", None)
    if session is None or session.session_key is not None or session.modified:
        return False
    if getattr(session, "_session_cache", None):  # data put in before a key was made
        return False
    anonymous = _anonymous_user()
    request._cached_user = anonymous  # type: ignore[attr-defined]  # as the middleware's get_user
    user._wrapped = anonymous
    session.accessed = True
    return True


_ANONYMOUS: list[type[Any]] = []


def _anonymous_user() -> Any:
    """A new ``AnonymousUser`` (its class imported once, at the first request: apps are
    ready by then, not necessarily when this module is imported)."""
    if not _ANONYMOUS:
        from django.contrib.auth.models import AnonymousUser

        _ANONYMOUS.append(AnonymousUser)
    return _ANONYMOUS[0]()


def identity(found: list[Any]) -> str | None:
    """The part of a page key that names the visitor ("" for anonymous), or None when
    a user has neither a primary key nor a username to tell them apart by."""
    names = [_name(user) for user in found]
    if None in names:
        return None
    return "|".join(sorted(set(cast(list[str], names))))


def _name(user: Any) -> str | None:
    name = account_name(user)
    return None if name is None else f"user:{name}"


def _add(found: list[Any], user: Any) -> None:
    if user is None or not bool(getattr(user, "is_authenticated", False)):
        return
    if all(other is not user and _name(other) != _name(user) for other in found):
        found.append(user)


def _unevaluated(user: Any) -> bool:
    return isinstance(user, SimpleLazyObject) and user._wrapped is empty


def _is_session_lazy(user: Any) -> bool:
    """Whether ``user`` is the lazy object ``AuthenticationMiddleware`` set (the session's user)."""
    if not isinstance(user, SimpleLazyObject):
        return False
    setup = user.__dict__.get("_setupfunc")
    return getattr(setup, "__module__", None) == _SESSION_USER_MODULE


def _authenticated(user: Any) -> Any:
    return user if user.is_authenticated else None


# -- what the view read -----------------------------------------------------------------


class Watch:
    """Whether the view read or wrote the session while it (and its template) ran.

    ``session.accessed`` is already True when the visitor check above loaded the
    session, so it is cleared for the render and restored (or'ed) after it (a
    write sets it too). ``modified`` is never cleared, so no write can be lost: when
    it was set before the view (a middleware wrote the session), a read during the
    render cannot be told from a write and counts as one.
    """

    __slots__ = ("accessed", "modified", "session")

    def __init__(self, request: HttpRequest) -> None:
        self.session = getattr(request, "session", None)
        self.accessed = self.modified = False
        if self.session is not None:
            self.accessed = bool(self.session.accessed)
            self.modified = bool(self.session.modified)
            self.session.accessed = False

    def finish(self) -> tuple[bool, bool]:
        """(read, written) during the render; restores the flags SessionMiddleware reads."""
        session = self.session
        if session is None:
            return False, False
        self.session = None  # finish once
        read = bool(session.accessed)
        session.accessed = read or self.accessed
        return read, bool(session.modified) and (read or not self.modified)


def cookie_coming(request: HttpRequest) -> bool:
    """Whether a middleware will set this visitor's cookie on the response: the session
    saved (written, or ``SESSION_SAVE_EVERY_REQUEST`` with a session), a CSRF cookie due."""
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return True
    session = getattr(request, "session", None)
    if session is None:
        return False
    if session.modified:
        return True
    return bool(settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty()


# -- what the response says --------------------------------------------------------------

SHARED, PERSONAL = "shared", "personal"


def verdict(
    request: HttpRequest,
    response: HttpResponseBase,
    covered_headers: tuple[str, ...],
    session_read: bool,
    session_written: bool,
) -> str | None:
    """``SHARED`` (fit for everyone under its key), ``PERSONAL`` (fit for this visitor
    only), or None: never stored.

    Never: a cookie set (``response.cookies`` or a raw ``Set-Cookie`` header), the
    session written, the CSRF token used, flash messages looked at or added,
    ``no-store``, ``no-cache``, ``max-age=0``, ``s-maxage=0``, ``Vary: *`` or a
    ``Vary`` on a request header the key does not cover.
    Personal: the session read, ``private``, ``Vary: Cookie`` or ``Authorization``.
    """
    if response.cookies or response.has_header("Set-Cookie") or session_written:
        return None
    meta = request.META
    if meta.get("CSRF_COOKIE_NEEDS_UPDATE") or meta.get("CSRF_COOKIE_USED"):
        return None
    # Messages looked at (listed, counted or tested: any of these loads them) or added.
    messages = get_messages(request)
    if getattr(messages, "added_new", False) or getattr(messages, "_loaded_data", None):
        return None
    personal = session_read
    if response.has_header("Cache-Control"):
        directives = {
            d.split("=", 1)[0].strip().lower() for d in _COMMA.split(response["Cache-Control"])
        }
        if directives & _NEVER or get_max_age(response) == 0 or _s_maxage(response) == 0:
            return None
        personal = personal or "private" in directives
    if response.has_header("Vary"):
        covered = {name.lower() for name in covered_headers}
        for name in _COMMA.split(response["Vary"].strip().lower()):
            if name in _PERSONAL_VARY:
                personal = True
            elif name not in covered:  # includes "*"
                return None
    return PERSONAL if personal else SHARED


def _s_maxage(response: HttpResponseBase) -> int | None:
    for directive in _COMMA.split(response["Cache-Control"]):
        name, _, value = directive.partition("=")
        if name.strip().lower() == "s-maxage":
            try:
                return int(value.strip().strip('"'))
            except ValueError:
                return 0  # unreadable: take the safe side
    return None
