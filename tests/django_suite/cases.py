"""``BaseCacheTests`` from Django's suite, adapted to ``RedisCache`` the way Django adapts it to
its own Redis backend (``RedisCacheTests``): same tests, a few overrides where this backend
differs on purpose. Each override says why and asserts this backend's behaviour; none skips.

Import only after :func:`tests.django_suite.require` succeeded.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any, ClassVar

from cache.tests import (  # type: ignore[import-not-found]  # Django's suite, fetched
    BaseCacheTests,
    Unpicklable,
    caches_setting_for_tests,
)
from django.core.cache import CacheKeyWarning, cache, caches

from django_creator_cache.exceptions import SerializationError

BACKEND = "django_creator_cache.backend.RedisCache"


def caches_setting(location: str, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Django's test ``CACHES`` (default, prefix, v2, custom_key, cull ...) on our backend.

    ``caches_setting_for_tests`` replaces ``OPTIONS`` wholesale for the cull entries
    (``{"MAX_ENTRIES": 30}``); ``options`` (e.g. ``MODE: cluster``) is merged back into every
    entry so all of them reach the same servers the same way.
    """
    setting: dict[str, dict[str, Any]] = caches_setting_for_tests(
        base={"BACKEND": BACKEND, "LOCATION": location}
    )
    for params in setting.values():
        params["OPTIONS"] = {**options, **params.get("OPTIONS", {})}
    return setting


class RedisBackendCacheTests(BaseCacheTests):
    """Django's ``BaseCacheTests`` on ``django_creator_cache.backend.RedisCache``.

    A subclass (also a ``django.test.TestCase``) sets ``mode``; the class-scoped fixture in
    ``tests/test_django_cache_suite.py`` sets ``location`` to real, running servers before
    ``setUpClass``, which then overrides ``CACHES`` as Django's ``@override_settings`` on
    ``RedisCacheTests`` does.
    """

    mode: ClassVar[str] = ""
    location: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    # incr_decr_type_error stays TypeError (BaseCacheTests' default). Django's RedisCacheTests
    # expects redis.ResponseError there; this backend turns Redis's "not an integer" reply into
    # the TypeError every other Django backend raises.

    @classmethod
    def setUpClass(cls) -> None:
        if not cls.location:
            raise RuntimeError(f"{cls.__name__}: no servers; the class fixture sets `location`")
        cls._overridden_settings = {"CACHES": caches_setting(cls.location, cls.options)}
        super().setUpClass()

    def test_backend_under_test(self) -> None:
        """Not in Django: make sure the suite really ran on this backend, in this mode."""
        from django_creator_cache.backend import RedisCache

        for alias in ("default", "prefix", "v2", "custom_key", "cull"):
            with self.subTest(alias=alias):
                backend = caches[alias]
                self.assertIsInstance(backend, RedisCache)
                self.assertEqual(backend.options.mode, self.mode)
                self.assertIs(backend.set("probe", 1), True)
                self.assertEqual(backend.get("probe"), 1)

    # -- overrides: intended differences ------------------------------------------------------

    def _perform_invalid_key_test(
        self, key: str, expected_warning: str, key_func: Any = None
    ) -> None:
        """Override (test_invalid_key_characters, test_invalid_key_length,
        test_invalid_with_version_key_length): no ``CacheKeyWarning``, the key just works.

        Django's backends warn about keys memcached would refuse (spaces, control characters,
        more than 250 characters). Every key is valid on Redis: any Unicode is stored as is and
        keys longer than ``MAX_CACHE_KEY_LENGTH`` are shortened with a stable hash, so there is
        nothing to warn about. The same operations Django runs (with the same custom key
        function that bypasses the default one) must emit no warning and round-trip the value.
        """

        def func(key: str, *args: Any) -> str:
            return key

        old_func = cache.key_func
        cache.key_func = key_func or func
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", CacheKeyWarning)
                # A long key is stored under a shortened one, never longer than the limit.
                self.assertLessEqual(len(cache.make_key(key)), cache._max_key_length)
                self.assertIs(cache.add(key, 1), True)
                self.assertEqual(cache.get(key), 1)
                self.assertIs(cache.set(key, 1), True)
                self.assertEqual(cache.incr(key), 2)
                self.assertEqual(cache.decr(key), 1)
                self.assertIs(cache.touch(key), True)
                self.assertIs(cache.delete(key), True)
                self.assertIsNone(cache.get(key))
                self.assertEqual(cache.set_many({key: 1, "b": 2}), [])
                self.assertEqual(cache.get_many([key, "b"]), {key: 1, "b": 2})
                cache.delete_many([key, "b"])
                self.assertEqual(cache.get_many([key, "b"]), {})
                # Two long keys that share their first 250 characters stay apart.
                cache.set(key, "first")
                cache.set(key + "x", "second")
                self.assertEqual(cache.get(key), "first")
                self.assertEqual(cache.get(key + "x"), "second")
        finally:
            cache.key_func = old_func

    def _perform_cull_test(
        self, cull_cache_name: str, initial_count: int, final_count: int
    ) -> None:
        """Override (test_cull, test_zero_cull): ``MAX_ENTRIES``/``CULL_FREQUENCY`` are ignored.

        Culling is a feature of Django's local-memory, file and database caches. Redis evicts
        by its own ``maxmemory-policy``; this backend never deletes entries to stay under an
        entry count (Django's RedisCacheTests excludes the cull caches and so skips these
        tests). The cull caches are configured here anyway: every entry must still be there.
        """
        cull_cache = caches[cull_cache_name]
        for i in range(1, initial_count):
            cull_cache.set(f"cull{i}", "value", 1000)
        kept = sum(cull_cache.has_key(f"cull{i}") for i in range(1, initial_count))
        self.assertEqual(kept, initial_count - 1)

    def test_delete_many_no_keys(self) -> None:
        """Override: ``delete_many`` returns how many keys it deleted, so 0 here.

        Django's API returns None; this backend returns the count, as django-redis does (it is
        a drop-in for it). The count is right with and without keys.
        """
        self.assertEqual(cache.delete_many([]), 0)
        cache.set_many({"key1": "spam", "key2": "eggs"})
        self.assertEqual(cache.delete_many(["key1", "key2", "missing"]), 2)

    def _assert_serialization_error(self, operation: str) -> None:
        with self.assertRaises(SerializationError) as cm:
            getattr(cache, operation)("unpicklable", Unpicklable())
        # Still "doesn't fail silently" and still a TypeError, with pickle's error as cause.
        self.assertIsInstance(cm.exception, TypeError)
        self.assertIsInstance(cm.exception.__cause__, pickle.PickleError)
        self.assertIs(cache.has_key("unpicklable"), False)

    def test_add_fail_on_pickleerror(self) -> None:
        """Override: an unpicklable value raises ``SerializationError``, not ``PickleError``.

        The backend wraps every serializer's error (pickle, JSON, msgpack) in its own
        ``SerializationError`` (a ``TypeError``), chained from the serializer's exception.
        """
        self._assert_serialization_error("add")

    def test_set_fail_on_pickleerror(self) -> None:
        """Override: as ``test_add_fail_on_pickleerror``."""
        self._assert_serialization_error("set")
