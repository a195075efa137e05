"""Settings for the example project: local development only.

The cache is this package's backend, used for pages, rate limits, sessions and the
domain managers. With ``REDIS_URL`` (or ``REDIS_HOST``) set it runs on that server;
otherwise on an embedded in-process fakeredis, so the demo needs no Redis installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from django_creator_cache import embedded
from django_creator_cache.env import BACKEND, cache_from_env, redis_url_from_env

BASE_DIR = Path(__file__).resolve().parent

# Local use only: never deploy these settings.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-local-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in {"1", "true", "yes", "on"}
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    # Before staticfiles: its runserver adds the cache banner to staticfiles' one.
    "example_project.creators",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_creator_cache",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_PROJECT_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

if redis_url_from_env():
    CACHES = {"default": cache_from_env()}
else:
    CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": embedded.start()}}

# Sessions (the admin's logins) live in the cache: one day (CACHE_TTL_SESSION), and
# SessionStore.delete_user_sessions(user_id) logs a user out everywhere.
SESSION_ENGINE = "django_creator_cache.sessions"

# Benchmarks only: lets the X-Cache-Bypass: 1 request header skip the caches of the views.
CREATORS_ALLOW_CACHE_BYPASS = os.environ.get("EXAMPLE_ALLOW_CACHE_BYPASS", "") == "1"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
