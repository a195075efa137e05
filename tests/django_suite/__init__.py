"""Django's own cache tests (``BaseCacheTests``) run against ``RedisCache``.

Django's wheel ships no tests: ``scripts/fetch_django_tests.py`` extracts ``tests/cache/`` from
the sdist of the installed Django to ``.django-tests/<version>/cache/``, and ``tests/settings.py``
puts that directory on ``sys.path`` (package ``cache``, as Django's own runner names it) and
installs its app. :func:`require` fails loudly when the suite is missing: it is never skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent.parent
SUITE_DIR = REPO / ".django-tests" / django.get_version()
FETCH_COMMAND = "python scripts/fetch_django_tests.py"


class DjangoSuiteMissing(RuntimeError):
    """Django's cache tests are not extracted for the installed Django."""


def require() -> Path:
    """Make sure ``cache.tests`` (Django's suite) is importable; return its directory.

    Raises :class:`DjangoSuiteMissing` with the command to run when it is not there, or when
    ``tests/settings.py`` did not install its app (the suite was fetched after settings loaded).
    """
    version = django.get_version()
    if not (SUITE_DIR / "cache" / "tests.py").is_file():
        raise DjangoSuiteMissing(
            f"Django {version}'s cache tests are missing from {SUITE_DIR / 'cache'}: "
            f"run `{FETCH_COMMAND}` (from {REPO}) first; it downloads the Django {version} "
            "sdist with pip and extracts tests/cache/ from it."
        )
    if "cache" not in settings.INSTALLED_APPS:
        raise DjangoSuiteMissing(
            f"{SUITE_DIR / 'cache'} exists but the app 'cache' is not in INSTALLED_APPS: "
            "tests/settings.py installs it only when the suite is present when settings load "
            f"(run `{FETCH_COMMAND}` before pytest, not during it)."
        )
    if str(SUITE_DIR) not in sys.path:
        sys.path.insert(0, str(SUITE_DIR))
    return SUITE_DIR
