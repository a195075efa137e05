"""Invalidation from model signals, at commit, on single, Sentinel and Cluster.

The rules under test are declared in ``tests.testapp.apps`` (as a project would):
Campaign invalidates prefixes ``campaigns`` and ``dashboard`` and tags
``campaign:<pk>`` and ``owner:<owner>``; Promoter invalidates ``promoters:<pk>``
(computed) and tag ``promoters``. Promoter.campaigns is the many-to-many.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

from django_creator_cache.invalidation import models as invalidation
from django_creator_cache.invalidation.models import (
    cache_invalidated,
    invalidate_model,
    invalidate_on,
    no_invalidation,
)
from tests.testapp.models import Campaign, Promoter

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


@pytest.fixture
def sent() -> Iterator[list[dict[str, Any]]]:
    """Every ``cache_invalidated`` sent during the test."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    cache_invalidated.connect(receiver)
    yield received
    cache_invalidated.disconnect(receiver)


def fill(cache: Any, campaign: Campaign | None = None, promoter: Promoter | None = None) -> None:
    """One entry per way of being invalidated, and one that nothing here touches."""
    cache.set("campaigns:list", "list")
    cache.set("dashboard:main", "dashboard")
    cache.set("unrelated:page", "kept", tags=["campaign:0"])
    if campaign is not None:
        cache.set("pages:campaign", "tagged", tags=[f"campaign:{campaign.pk}"])
        cache.set("pages:owner", "tagged", tags=[f"owner:{campaign.owner}"])
    if promoter is not None:
        cache.set(f"promoters:{promoter.pk}:profile", "profile")
        cache.set("pages:promoters", "tagged", tags=["promoters"])


def present(cache: Any) -> set[str]:
    keys = [
        "campaigns:list",
        "dashboard:main",
        "unrelated:page",
        "pages:campaign",
        "pages:owner",
        "pages:promoters",
    ]
    found = {key for key, value in cache.get_many(keys).items() if value is not None}
    return found | {"promoter-profile" for key in cache.keys("promoters:*")}


ALL_CAMPAIGN = {"campaigns:list", "dashboard:main", "unrelated:page"}
ALL_TAGGED = {"pages:campaign", "pages:owner"}


# -- saves and deletes -------------------------------------------------------------------


def test_save_invalidates_declared_prefixes_and_computed_tags(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    campaign.save()
    assert present(cache) == {"unrelated:page"}


def test_inside_a_transaction_entries_stay_until_commit(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    with transaction.atomic():
        campaign.save()
        Campaign.objects.create(name="Summer")
        assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED
    assert present(cache) == {"unrelated:page"}


def test_a_rolled_back_write_invalidates_nothing(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    with pytest.raises(Rollback), transaction.atomic():
        campaign.save()
        raise Rollback
    with transaction.atomic():  # a savepoint rolled back inside a committed transaction
        try:
            with transaction.atomic():
                campaign.delete()
                raise Rollback
        except Rollback:
            pass
    assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED


def test_tags_are_computed_from_the_instance_when_it_is_written(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    cache.set("pages:bob", "x", tags=["owner:bob"])
    cache.set("pages:carl", "x", tags=["owner:carl"])
    with transaction.atomic():
        campaign.owner = "bob"
        campaign.save()
        campaign.owner = "carl"  # changed after the save, never written
    assert cache.get("pages:bob") is None
    assert cache.get("pages:carl") == "x"


def test_a_change_of_owner_invalidates_the_old_and_the_new_owners_names(cache: Any) -> None:
    """A computed tag names the owner: when a save or an update moves the row from ann to
    bob, both owners' cached lists are stale (ann's lost a campaign, bob's gained one)."""
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    for owner in ("ann", "bob", "carol", "dan"):
        cache.set(f"lists:{owner}", owner, tags=[f"owner:{owner}"])
    campaign.owner = "bob"
    campaign.save()  # ann -> bob: the row as it was is read before the save
    assert cache.get_many(["lists:ann", "lists:bob", "lists:carol"]) == {"lists:carol": "carol"}
    cache.set("lists:bob", "bob", tags=["owner:bob"])
    assert Campaign.objects.filter(pk=campaign.pk).update(owner="carol") == 1  # bob -> carol
    assert cache.get_many(["lists:bob", "lists:carol", "lists:dan"]) == {"lists:dan": "dan"}


def test_delete_invalidates_with_the_deleted_instance_tags(cache: Any) -> None:
    spring = Campaign.objects.create(name="Spring", owner="ann")
    summer = Campaign.objects.create(name="Summer", owner="bob")
    cache.set("pages:spring", "x", tags=[f"campaign:{spring.pk}"])
    cache.set("pages:summer", "x", tags=[f"campaign:{summer.pk}"])
    spring.delete()
    assert cache.get("pages:spring") is None
    assert cache.get("pages:summer") == "x"
    Campaign.objects.filter(owner="bob").delete()  # QuerySet.delete sends post_delete too
    assert cache.get("pages:summer") is None


def test_computed_prefixes(cache: Any) -> None:
    ann, bob = Promoter.objects.create(handle="ann"), Promoter.objects.create(handle="bob")
    cache.set(f"promoters:{ann.pk}:profile", 1)
    cache.set(f"promoters:{bob.pk}:profile", 2)
    ann.save()
    assert cache.get(f"promoters:{ann.pk}:profile") is None
    assert cache.get(f"promoters:{bob.pk}:profile") == 2


# -- many-to-many, from both sides -------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "promoter.campaigns.add(campaign)",
        "campaign.promoters.add(promoter)",
        "promoter.campaigns.remove(campaign)",
        "campaign.promoters.remove(promoter)",
        "promoter.campaigns.clear()",
        "campaign.promoters.clear()",
        "promoter.campaigns.set([])",
    ],
)
def test_m2m_change_invalidates_both_sides(cache: Any, change: str) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    promoter = Promoter.objects.create(handle="ann")
    if "add" not in change:
        promoter.campaigns.add(campaign)
    fill(cache, campaign, promoter)
    with transaction.atomic():
        exec(change, {"campaign": campaign, "promoter": promoter})
        assert "promoter-profile" in present(cache)  # not before the commit
    assert present(cache) == {"unrelated:page"}


def test_m2m_change_that_changes_nothing_invalidates_nothing(cache: Any, sent: list[Any]) -> None:
    campaign = Campaign.objects.create(name="Spring")
    promoter = Promoter.objects.create(handle="ann")
    promoter.campaigns.add(campaign)
    sent.clear()
    promoter.campaigns.add(campaign)  # already there
    campaign.promoters.add(promoter)
    assert sent == []


# -- writes that send no signal ----------------------------------------------------------


def test_queryset_update_invalidates_at_commit_with_the_rows_before(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    with transaction.atomic():
        assert Campaign.objects.filter(owner="ann").update(owner="zed") == 1
        assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED
    assert present(cache) == {"unrelated:page"}  # owner:ann, the value before the update


def test_update_through_as_manager_and_empty_updates(cache: Any, sent: list[Any]) -> None:
    promoter = Promoter.objects.create(handle="ann")
    fill(cache, promoter=promoter)
    sent.clear()
    assert Promoter.objects.filter(handle="nobody").update(handle="x") == 0
    assert sent == []
    Promoter.objects.filter(pk=promoter.pk).update(handle="bob")
    assert "promoter-profile" not in present(cache)
    assert cache.get("pages:promoters") is None


def test_bulk_create_and_bulk_update(cache: Any) -> None:
    created = Campaign.objects.bulk_create([Campaign(name="A", owner="ann")])
    fill(cache, created[0])
    with transaction.atomic():
        Campaign.objects.bulk_create([Campaign(name="B", owner="bob")])
        assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED
    assert present(cache) == ALL_TAGGED | {"unrelated:page"}  # other campaign, other tags
    created[0].name = "A2"
    Campaign.objects.bulk_update(created, ["name"])
    assert present(cache) == {"unrelated:page"}


def test_invalidate_model_by_hand(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    with transaction.atomic():
        invalidate_model(Campaign)
        assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED
    assert present(cache) == ALL_TAGGED | {"unrelated:page"}  # prefixes only: no instances
    invalidate_model(Campaign, [campaign])
    assert present(cache) == {"unrelated:page"}
    with pytest.raises(ValueError, match="pass the instances"):
        invalidate_model(Promoter)  # its prefixes are computed
    with pytest.raises(LookupError, match="no invalidate_on"):
        invalidate_model(User)


# -- switches and signal -----------------------------------------------------------------


def test_no_invalidation_as_context_manager_and_decorators(cache: Any) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    with no_invalidation():
        campaign.save()
        Campaign.objects.filter(pk=campaign.pk).update(name="x")

    @no_invalidation()
    def save() -> None:
        campaign.save()

    @no_invalidation()
    async def save_async() -> None:
        await sync_to_async(campaign.save)()

    save()
    asyncio.run(save_async())
    assert present(cache) == ALL_CAMPAIGN | ALL_TAGGED
    campaign.save()  # outside: back to normal
    assert present(cache) == {"unrelated:page"}


def test_cache_invalidated_is_sent_after_each_invalidation(
    cache: Any, sent: list[dict[str, Any]]
) -> None:
    campaign = Campaign.objects.create(name="Spring", owner="ann")
    fill(cache, campaign)
    sent.clear()
    with transaction.atomic():
        campaign.save()
        assert sent == []
    assert sent == [
        {
            "sender": Campaign,
            "signal": cache_invalidated,
            "prefixes": ("campaigns", "dashboard"),
            "tags": (f"campaign:{campaign.pk}", "owner:ann"),
            "alias": "default",
            "using": "default",
            "deleted": 4,
        }
    ]


# -- registration --------------------------------------------------------------------------


@pytest.fixture
def campaign_rules() -> Iterator[None]:
    """Restore the test app's Campaign rules after a test replaced them."""
    saved = dict(invalidation._rules[Campaign])
    yield
    invalidation._rules[Campaign] = saved


def test_registering_again_replaces_the_rule_and_connects_once(
    cache: Any, sent: list[dict[str, Any]], campaign_rules: None
) -> None:
    for _ in range(3):
        rule = invalidate_on(Campaign, prefixes="campaigns", tags=["all-campaigns"])
    assert rule.prefixes == ("campaigns",)
    Campaign.objects.create(name="Spring")
    assert [(s["prefixes"], s["tags"]) for s in sent] == [(("campaigns",), ("all-campaigns",))]


def test_registration_errors_are_explained() -> None:
    class Abstract(models.Model):
        class Meta:
            abstract = True
            app_label = "testapp"

    with pytest.raises(TypeError, match="concrete model"):
        invalidate_on(Abstract, prefixes=["x"])
    with pytest.raises(ImproperlyConfigured, match="no cache 'nope'"):
        invalidate_on(Campaign, prefixes=["x"], cache="nope")
    with pytest.raises(ValueError, match="prefixes, tags or both"):
        invalidate_on(Campaign)
    with pytest.raises(TypeError, match="non-empty strings"):
        invalidate_on(Campaign, prefixes=[""])


def test_a_cache_that_cannot_invalidate_is_logged_not_raised(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with caplog.at_level(logging.ERROR):
        Campaign.objects.create(name="Spring")  # the row is saved all the same
    assert Campaign.objects.count() == 1
    assert "cannot invalidate by prefix or tag" in caplog.text
