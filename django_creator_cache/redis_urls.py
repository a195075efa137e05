"""Passwords in Redis URLs, one rule for settings, pages and logs: where a URL carries
one (``user:password@`` or ``?password=``: redis-py reads both, the query being the way
for ``unix://`` sockets), taken out, or hidden.

Imported by settings files (``cache_from_env``): nothing here reads settings.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit


def url_password(url: str) -> str | None:
    """The password a Redis URL carries, decoded: in its ``user:password@`` part or its
    ``?password=`` query (redis-py reads both; the query is the way for ``unix://``)."""
    parts = urlsplit(url)
    if parts.password is not None:
        return unquote(parts.password)
    found = [value for name, value in parse_qsl(parts.query) if name == "password"]
    return found[-1] if found else None


def _password_replaced(url: str, by: str | None) -> str:
    """``url`` with each password it carries replaced ``by`` (None: taken out); the rest
    as written (``unix:///path`` keeps its slashes, the query its order)."""
    base, mark, rest = url.partition("?")
    query, hash_mark, fragment = rest.partition("#")
    parts = urlsplit(base)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        netloc = f"{user}:{by}@" if by is not None else f"{user}@" if user else ""
        base = urlunsplit(parts._replace(netloc=netloc + host))
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        kept = [
            (n, by if n == "password" else v) for n, v in pairs if by is not None or n != "password"
        ]
        query = urlencode(kept, safe="*")
    return base + (mark if query else "") + query + hash_mark + fragment


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and pages."""
    return url if url_password(url) is None else _password_replaced(url, "***")


def without_password(url: str) -> str:
    """``url`` with any password taken out (it goes in ``OPTIONS["PASSWORD"]``)."""
    return url if url_password(url) is None else _password_replaced(url, None)
