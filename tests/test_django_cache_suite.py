"""Django's own cache tests (``BaseCacheTests`` of Django's test suite) against ``RedisCache``,
on a single real redis-server and on a real 6-node Redis Cluster.

The suite comes from the sdist of the installed Django (``scripts/fetch_django_tests.py``, run
by ``scripts/test.sh`` before pytest). Without it this module fails to import, loudly, naming
that command: a missing suite never passes as skipped. Overrides of Django's tests, where this
backend differs on purpose, are in ``tests/django_suite/cases.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import TestCase

from tests.django_suite import DjangoSuiteMissing, require

_missing = ""
try:
    require()
except DjangoSuiteMissing as exc:
    _missing = str(exc)
if _missing:
    pytest.fail(_missing, pytrace=False)

from tests.django_suite.cases import RedisBackendCacheTests  # noqa: E402


@pytest.fixture(scope="class", autouse=True)
def _cache_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Point the class at the session's servers (conftest) before its ``setUpClass`` runs.

    Class-scoped autouse fixtures of the module run before the ``setUpClass`` fixture pytest
    registers on the class itself, so ``location`` is set when ``setUpClass`` builds ``CACHES``.
    """
    cls: Any = request.cls
    if cls is None or not issubclass(cls, RedisBackendCacheTests):
        yield
        return
    if cls.mode == "single":
        cls.location = request.getfixturevalue("redis_server").url
    else:
        cls.location = request.getfixturevalue("redis_cluster").location
    yield
    cls.location = ""


class SingleRedisDjangoCacheTests(RedisBackendCacheTests, TestCase):
    """``BaseCacheTests`` on one redis-server."""

    mode = "single"
    options: dict[str, Any] = {}  # noqa: RUF012


@pytest.mark.slow
class ClusterDjangoCacheTests(RedisBackendCacheTests, TestCase):
    """``BaseCacheTests`` on a 6-node Redis Cluster (3 primaries, 3 replicas)."""

    mode = "cluster"
    options: dict[str, Any] = {"MODE": "cluster"}  # noqa: RUF012
