"""``manage.py cache_warm`` and the warmer registry, on real servers."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_creator_cache import warming
from django_creator_cache.management.commands.cache_warm import Command

fetched: list[str] = []


@pytest.fixture(autouse=True)
def registry(cache: Any) -> Iterator[None]:
    """A registry of three warmers: two good, one that breaks."""
    saved = warming.warmers()
    warming._registry.clear()
    fetched.clear()

    @warming.warmer("campaigns", ttl="10m")
    def campaigns() -> Iterator[tuple[str, warming.Fetcher]]:
        """Campaign pages."""
        for pk in range(1, 251):
            yield f"campaign:{pk}", lambda pk=pk: fetched.append(f"c{pk}") or {"pk": pk}

    @warming.warmer("broken")
    def broken() -> dict[str, warming.Fetcher]:
        raise RuntimeError("database is down")

    @warming.warmer("flags", ttl=60)
    def flags() -> dict[str, warming.Fetcher]:
        return {"flag:a": lambda: True, "flag:b": lambda: 1 / 0, "flag:c": lambda: "on"}

    yield
    warming._registry.clear()
    warming._registry.update(saved)


def _run(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("cache_warm", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_every_warmer_runs_and_failures_are_reported(cache: Any) -> None:
    output, error = _run()
    assert error is not None and "2 of 3 warmer(s) failed: broken, flags" in str(error)
    assert "[1/3] campaigns ... 250 keys, 0 failed" in output
    assert "[2/3] broken ... 0 keys" in output and "RuntimeError: database is down" in output
    assert "[3/3] flags ... 3 keys, 1 failed" in output and "failed key: flag:b" in output
    assert "total: 253 keys, 1 failures" in output
    # The good work was done, despite the failures around it.
    assert cache.get("campaign:250") == {"pk": 250}
    assert 595 <= cache.ttl("campaign:1") <= 600
    assert cache.get("flag:a") is True and cache.get("flag:c") == "on"
    assert cache.get("flag:b") is None
    assert 55 <= cache.ttl("flag:a") <= 60


def test_only_and_dry_run(cache: Any) -> None:
    output, error = _run("--only", "campaigns", "--dry-run")
    assert error is None
    assert "Listing keys of 1 warmer(s)" in output and "250 keys" in output
    assert "dry run" in output and "flags" not in output
    assert fetched == [] and cache.get("campaign:1") is None  # nothing fetched or written
    output, error = _run("--only", "campaigns,flags")
    assert error is not None and "1 of 2" in str(error)
    assert len(fetched) == 250
    output, error = _run("--only", "nope")
    assert error is not None and "unknown warmer(s): nope" in str(error)
    assert "campaigns, broken, flags" in str(error)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal(cache: Any) -> None:
    out = _Terminal()
    call_command("cache_warm", "--only", "campaigns", stdout=out)
    shown = out.getvalue()
    # A live counter, rewritten in place after every batch of BATCH keys.
    assert "\r[1/1] campaigns ... 100 keys" in shown
    assert "\r[1/1] campaigns ... 200 keys" in shown
    assert "\r[1/1] campaigns ... 250 keys, 0 failed" in shown


def test_list(cache: Any) -> None:
    output, error = _run("--list")
    assert error is None
    assert output.splitlines()[0] == "campaigns  (cache 'default') Campaign pages."


def test_exit_status_is_non_zero_when_a_warmer_failed(
    cache: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        Command().run_from_argv(["manage.py", "cache_warm", "--only", "broken"])
    assert info.value.code == 1
    assert "1 of 1 warmer(s) failed: broken" in capsys.readouterr().err
    Command().run_from_argv(["manage.py", "cache_warm", "--only", "campaigns"])  # exit 0


def test_a_name_is_registered_once(cache: Any) -> None:
    with pytest.raises(ValueError, match="already registered"):
        warming.warmer("flags")(lambda: {})


def test_warmers_are_discovered_in_installed_apps(cache: Any, tmp_path: Path) -> None:
    package = tmp_path / "warmapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cache_warmers.py").write_text(
        "from django_creator_cache.warming import warmer\n\n"
        "@warmer('discovered', ttl=30)\n"
        "def discovered():\n"
        "    return {'found': lambda: 'yes'}\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        installed = [config.name for config in apps.get_app_configs()]
        with override_settings(INSTALLED_APPS=[*installed, "warmapp"]):
            apps.get_app_config("django_creator_cache").ready()
            assert "discovered" in warming.warmers()
            _output, error = _run("--only", "discovered")
        assert error is None and cache.get("found") == "yes"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("warmapp.cache_warmers", None)
        sys.modules.pop("warmapp", None)
