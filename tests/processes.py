"""Worker processes for the multi-process tests, started with ``spawn``.

A child forked from the pytest process would inherit its threads: asgiref's executor thread,
started by the first async test that crosses ``sync_to_async``, lives for the rest of the
run, and Python 3.12+ then warns at every ``fork()`` that the child may deadlock. A spawned
child starts clean; ``process`` hands it the parent's current Django settings (the test's
overrides included), so a worker sees the same ``CACHES`` and engines as the test.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
from collections.abc import Callable
from typing import Any

from django.conf import UserSettingsHolder, settings

CONTEXT = multiprocessing.get_context("spawn")


def _settings_now() -> dict[str, Any]:
    """The settings the test overrode (``settings`` fixture, ``override_settings``): the
    child starts from the same settings module and applies them on top."""
    overrides: dict[str, Any] = {}
    holder = getattr(settings, "_wrapped", None)
    layers = []
    while isinstance(holder, UserSettingsHolder):
        layers.append({k: v for k, v in vars(holder).items() if k.isupper()})
        holder = holder.default_settings
    for layer in reversed(layers):  # innermost override last, so it wins
        overrides.update(layer)
    pickle.dumps(overrides)  # fails here, in the test, if one cannot cross
    return overrides


def _run(snapshot: dict[str, Any], target: str, args: tuple[Any, ...]) -> None:
    """In the child: Django first, then the test module (importing it may need the apps)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.test.utils import override_settings

    django.setup()
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    with override_settings(**snapshot):
        function(*args)


def process(target: Callable[..., Any], *args: Any) -> Any:
    """A spawned ``Process`` running ``target(*args)`` under the parent's settings;
    ``target`` must be a module-level function. Queues, events and barriers passed to it
    come from ``CONTEXT``."""
    where = f"{target.__module__}:{target.__qualname__}"
    return CONTEXT.Process(target=_run, args=(_settings_now(), where, args))


def exit_codes(processes: list[Any], timeout: float) -> list[int | None]:
    """Wait for every process (``timeout`` seconds each at most); their exit codes (None:
    still running)."""
    for each in processes:
        each.join(timeout)
    return [each.exitcode for each in processes]
