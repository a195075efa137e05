"""Settings for mypy's Django plugin: the test settings without Django's own test apps."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "cache"]  # noqa: F405
