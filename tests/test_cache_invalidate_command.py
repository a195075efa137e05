"""``manage.py cache_invalidate`` on real servers: prefixes, tags, model rules, errors.

The Campaign rule (``tests.testapp.apps``) invalidates prefixes ``campaigns`` and
``dashboard`` and computed tags ``campaign:<pk>``/``owner:<owner>``; Promoter's
prefixes are computed. Successful paths run on single, Sentinel and Cluster.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from django_creator_cache.invalidation import transaction as invalidation_transaction
from django_creator_cache.management.commands.cache_invalidate import Command
from tests.conftest import single_entry
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as under manage.py

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def run(*args: str) -> tuple[str, CommandError | None]:
    """The command's output, and the ``CommandError`` it raised, if any."""
    out = io.StringIO()
    try:
        call_command("cache_invalidate", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def fill(cache: Any) -> None:
    """Entries under the Campaign rule's prefixes, two tags, and some nothing here touches."""
    cache.set_many({f"campaigns:{n}:detail": n for n in range(5)}, 300)
    cache.set("campaigns:list", "list", None)  # no expiry: the index's persistent twin
    cache.set_many({"dashboard:main:top": "d", "dashboard:side:top": "s"}, 300)
    cache.set_many({f"pages:c1:{n}": n for n in range(3)}, 300, tags=["campaign:1"])
    cache.set("pages:c2", "c2", 300, tags=["campaign:2"])
    cache.set_many({"campaignsx:1": "kept", "other:1": "kept", "lone": "kept"}, 300)
    cache.set("pages:c3", "kept", 300, tags=["campaign:3"])


def left(cache: Any) -> set[str]:
    return {key for key in cache.keys("*") if cache.get(key) is not None}


KEPT = {"campaignsx:1", "other:1", "lone", "pages:c3"}


# -- what it invalidates -----------------------------------------------------------------


def test_prefixes_and_tags_are_invalidated_and_counted(cache: Any) -> None:
    fill(cache)
    output, error = run(
        "--prefix", "campaigns", "--prefix", "dashboard:main",
        "--tag", "campaign:1", "--tag", "campaign:2",
    )  # fmt: skip
    assert error is None, error
    assert output.splitlines() == [
        "cache 'default': prefix 'campaigns': 6 entries",
        "cache 'default': prefix 'dashboard:main': 1 entry",
        "cache 'default': tag 'campaign:1': 3 entries",
        "cache 'default': tag 'campaign:2': 1 entry",
        "Invalidated 11 entries.",
    ]
    assert left(cache) == KEPT | {"dashboard:side:top"}


def test_model_rules_invalidate_their_static_prefixes(cache: Any) -> None:
    fill(cache)
    output, error = run("--model", "testapp.campaign")  # the model name in any case
    assert error is None, error
    assert output.splitlines() == [
        "model testapp.Campaign (cache 'default'): its tags are computed from instances and "
        "are not invalidated here; give them with --tag",
        "cache 'default': model testapp.Campaign (prefix 'campaigns', prefix 'dashboard'): "
        "8 entries",
        "Invalidated 8 entries.",
    ]
    tagged = {"pages:c1:0", "pages:c1:1", "pages:c1:2", "pages:c2"}
    assert left(cache) == KEPT | tagged


def test_inside_a_transaction_the_model_rules_wait_for_the_commit(cache: Any) -> None:
    fill(cache)
    with transaction.atomic():  # e.g. called from a data migration
        output, error = run("--prefix", "campaigns", "--model", "testapp.Campaign")
        assert error is None, error
        assert left(cache) >= {"dashboard:main:top", "dashboard:side:top"}
    assert output.splitlines()[-2:] == [
        "cache 'default': model testapp.Campaign (prefix 'campaigns', prefix 'dashboard'): "
        "at the commit of database 'default'",
        "Invalidated 6 entries; the rest at the commit.",
    ]
    assert left(cache) == KEPT | {"pages:c1:0", "pages:c1:1", "pages:c1:2", "pages:c2"}


def test_dry_run_counts_and_deletes_nothing(cache: Any) -> None:
    fill(cache)
    before = left(cache)
    output, error = run("--dry-run", "--prefix", "campaigns", "--tag", "campaign:1")
    assert error is None, error
    assert output.splitlines() == [
        "Dry run: nothing is deleted; counts are what the indexes hold now.",
        "cache 'default': prefix 'campaigns': up to 6 entries",
        "cache 'default': tag 'campaign:1': up to 3 entries",
        "Would invalidate up to 9 entries.",
    ]
    output, error = run("--dry-run", "--model", "testapp.Campaign")
    assert error is None, error
    assert "(prefix 'campaigns', prefix 'dashboard'): up to 8 entries" in output
    assert left(cache) == before
    # What the dry run counted is what the real run then deletes.
    assert run("--prefix", "campaigns")[0].endswith("Invalidated 6 entries.\n")


def test_a_prefix_no_process_declared_is_invalidated(cache: Any) -> None:
    cache.set("undeclared:1", "x", 300)
    output, error = run("--prefix", "undeclared")
    assert error is None, error
    assert "prefix 'undeclared': 1 entry" in output  # every write is indexed
    assert cache.get("undeclared:1") is None


def test_other_alias(cache: Any, settings: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "second": {**settings.CACHES["default"], "KEY_PREFIX": "2"},
    }
    second = caches["second"]
    second.set("campaigns:1", "second", 300)
    cache.set("campaigns:1", "default", 300)
    output, error = run("--cache", "second", "--prefix", "campaigns")
    assert error is None, error
    assert "cache 'second': prefix 'campaigns': 1 entry" in output
    assert second.get("campaigns:1") is None and cache.get("campaigns:1") == "default"


# -- errors ---------------------------------------------------------------------------------


@pytest.fixture
def single(redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    """The backend on the single server only: errors do not depend on the mode."""
    settings.CACHES = {"default": single_entry(redis_server)}
    cache = caches["default"]
    cache.clear()
    yield cache
    cache.clear()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to invalidate: give --prefix, --tag or --model"),
        (("--cache", "nope", "--tag", "t"), "unknown cache alias 'nope' (CACHES has 'default'"),
        (("--cache", "local", "--tag", "t"), "CACHES['local'] is a LocMemCache, which cannot"),
        (("--model", "Campaign"), "unknown model 'Campaign': use app_label.Model (models with"),
        (("--model", "testapp.Nope"), "unknown model 'testapp.Nope'"),
        (("--model", "auth.User"), "auth.User has no invalidate_on() rule (models with"),
        (("--model", "testapp.Promoter"), "its prefixes are computed from instances"),
        (("--prefix", ""), "--prefix '' is empty"),
        (("--prefix", ":"), "has an empty part"),
        (("--prefix", "a:b:"), "has an empty part"),
        (("--prefix", "a::b"), "has an empty part"),
        (("--tag", ""), "--tag must not be empty"),
    ],
)
def test_errors_are_explained_and_invalidate_nothing(
    single: Any, settings: Any, args: tuple[str, ...], message: str
) -> None:
    settings.CACHES = {**settings.CACHES, "local": LOCMEM}
    fill(single)
    before = left(single)
    # A valid prefix given beside the wrong argument is not invalidated either.
    output, error = run("--prefix", "campaigns", *args) if args else run()
    assert error is not None and message in str(error), (error, output)
    if "models with" in message:
        assert "rules: testapp.Campaign, testapp.Promoter)" in str(error)
    assert left(single) == before
    assert "Invalidated" not in output


def test_a_model_rule_on_a_cache_that_cannot_invalidate(single: Any, settings: Any) -> None:
    settings.CACHES = {"default": LOCMEM}
    _output, error = run("--model", "testapp.Campaign")
    assert error is not None and "CACHES['default'] is a LocMemCache" in str(error)


def test_redis_down_is_an_error(own_redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server)}
    settings.CACHE_HEALTH_RETRIES = 0
    own_redis_server.stop()
    for args in (
        ("--prefix", "campaigns"),
        ("--model", "testapp.Campaign"),
        ("--dry-run", "--tag", "t"),
    ):
        output, error = run(*args)
        assert error is not None, output
        assert "cache 'default' is unavailable" in str(error)
        assert "nothing was invalidated" in str(error)


def test_redis_failing_during_the_invalidation_is_an_error(settings: Any) -> None:
    # PING answers, but the script that takes an index is refused.
    with RedisServer(["--rename-command", "EVALSHA", "EVALSHA_OFF"]) as server:
        settings.CACHES = {"default": single_entry(server)}
        for args in (("--tag", "campaign:1"), ("--model", "testapp.Campaign")):
            output, error = run(*args)
            assert error is not None, output
            assert "Redis failed during the invalidation" in str(error)


def test_a_model_invalidation_that_did_not_run_is_an_error(
    single: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> int:
        raise RuntimeError("cache went away")

    monkeypatch.setattr(invalidation_transaction, "run", broken)  # on_commit logs it, robust
    _output, error = run("--model", "testapp.Campaign")
    assert error is not None
    assert "the invalidation in cache(s) 'default' did not run (see the log)" in str(error)


def test_exit_status(single: Any, capsys: pytest.CaptureFixture[str]) -> None:
    single.set("campaigns:1", 1, 300)
    with pytest.raises(SystemExit) as info:
        Command().run_from_argv(["manage.py", "cache_invalidate", "--model", "auth.User"])
    assert info.value.code == 1
    assert "CommandError: auth.User has no invalidate_on() rule" in capsys.readouterr().err
    Command().run_from_argv(["manage.py", "cache_invalidate", "--prefix", "campaigns"])  # exit 0
    assert "Invalidated 1 entry." in capsys.readouterr().out
    assert single.get("campaigns:1") is None
