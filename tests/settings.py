"""Settings for the test suite; caches point at servers the fixtures start."""

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django_creator_cache",
    "tests.testapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
# Replaced per test by fixtures that start a real redis-server.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Statistics are flushed explicitly in tests, so command counts stay exact.
CACHE_STATS_FLUSH_INTERVAL = 0
# Django REST framework (tests/test_drf_throttles.py): our throttles as the defaults. DRF
# reads DEFAULT_THROTTLE_CLASSES when APIView is defined, so they are set here.
REST_FRAMEWORK = {
    "DEFAULT_THROTTLE_CLASSES": [
        "django_creator_cache.ratelimit.drf.AnonRateThrottle",
        "django_creator_cache.ratelimit.drf.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "3/min", "user": "5/hour", "uploads": "2/m"},
}

# --- BEGIN Django's own cache test suite (tests/test_django_cache_suite.py) -----------------
# scripts/fetch_django_tests.py extracts Django's tests/cache/ package from the sdist of the
# installed Django to .django-tests/<version>/cache/. When it is there, that directory goes on
# sys.path so the package imports as ``cache`` (Django's tests name it so, e.g.
# "cache.tests.custom_key_func"), and its app (model Poll) is installed, as Django's runtests.py
# does. When it is missing, tests/test_django_cache_suite.py fails and says how to fetch it.
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import django as _django  # noqa: E402

_django_suite_dir = (
    _Path(__file__).resolve().parent.parent / ".django-tests" / _django.get_version()
)
if (_django_suite_dir / "cache" / "tests.py").is_file():
    if str(_django_suite_dir) not in _sys.path:
        _sys.path.insert(0, str(_django_suite_dir))
    INSTALLED_APPS = [*INSTALLED_APPS, "cache"]
# --- END Django's own cache test suite -------------------------------------------------------
