"""``python manage.py load_demo_data [--reset]``: a realistic platform, the same every time."""

from __future__ import annotations

import datetime
import random
import time
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from django_creator_cache.invalidation.models import invalidate_model, no_invalidation
from example_project.creators.models import Campaign, Payout, Promoter, ViewSnapshot

SEED = 2024
CAMPAIGNS = 400
PROMOTERS = 1500
PAYOUT_DAYS = 90
BATCH = 2000


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "Ava Noah Mia Liam Zoe Ethan Ivy Leo Nora Kai Ruby Omar Lena Milo Aria Theo Luna Max"
)
LAST = _words("Lens Beats Frames Cooks Travels Fits Glow Plays Talks Crafts Moves Tech Eats Vibes")
WORDS = _words("daily real just the its not only hey yo top mr ms big little true pure wild")
NOUNS = _words("dancer chef gamer coach artist traveler stylist baker skater reviewer nerd")
STATUSES = [
    (Campaign.Status.ACTIVE, 55),
    (Campaign.Status.COMPLETED, 25),
    (Campaign.Status.PAUSED, 10),
    (Campaign.Status.DRAFT, 10),
]


class Command(BaseCommand):
    help = "Load demo campaigns, promoters, view snapshots and daily payouts (fixed seed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="delete the platform's data first, then load"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if Campaign.objects.exists() and not options["reset"]:
            self.stdout.write("Demo data is already loaded (use --reset to load it again).")
            return
        started = time.perf_counter()
        with transaction.atomic(), no_invalidation():
            if options["reset"]:
                for model in (ViewSnapshot, Payout, Campaign, Promoter):
                    model.objects.all().delete()
            counts = load(random.Random(SEED), timezone.now())
        # bulk_create sends no signals: drop what the cache holds about these models at once.
        for model in (Campaign, Promoter, ViewSnapshot, Payout):
            invalidate_model(model)
        from example_project.creators.services import forget_payout

        for day in Payout.objects.values_list("date", flat=True):
            forget_payout(day)
        summary = ", ".join(f"{n:,} {name}" for name, n in counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Loaded {summary} in {time.perf_counter() - started:.1f} s.")
        )


def load(rng: random.Random, now: datetime.datetime) -> dict[str, int]:
    """Create the rows with ``bulk_create``; the number of rows per model."""
    platforms = Campaign.Platform.values
    statuses, weights = zip(*STATUSES, strict=True)
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(
                creator_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                platform=rng.choice(platforms),
                budget=Decimal(rng.randrange(200_00, 50_000_00, 25)) / 100,
                status=rng.choices(statuses, weights)[0],
            )
            for _ in range(CAMPAIGNS)
        ],
        batch_size=BATCH,
    )
    promoters = Promoter.objects.bulk_create(
        [
            Promoter(
                handle=f"{rng.choice(WORDS)}{rng.choice(NOUNS)}{n}",
                platform=rng.choice(platforms),
                followers=int(rng.paretovariate(1.2) * 800),
            )
            for n in range(PROMOTERS)
        ],
        batch_size=BATCH,
    )
    by_platform = {p: [pr for pr in promoters if pr.platform == p] for p in platforms}
    snapshots: list[ViewSnapshot] = []
    for campaign in campaigns:
        if campaign.status == Campaign.Status.DRAFT:
            continue
        pool = by_platform[campaign.platform]
        for promoter in rng.sample(pool, k=min(len(pool), rng.randint(4, 25))):
            views = 0
            bot = rng.random() < 0.05  # a few promoters buy views
            for _ in range(rng.randint(1, 3)):
                views += int(promoter.followers * rng.uniform(0.05, 0.6) * (20 if bot else 1))
                rate = rng.uniform(0.001, 0.004) if bot else rng.uniform(0.03, 0.12)
                snapshots.append(
                    ViewSnapshot(
                        promoter=promoter,
                        campaign=campaign,
                        views=views,
                        likes=int(views * rate),
                        comments=int(views * rate / 8),
                        shares=int(views * rate / 5),
                        taken_at=now - datetime.timedelta(minutes=rng.randrange(60 * 24 * 30)),
                    )
                )
    ViewSnapshot.objects.bulk_create(snapshots, batch_size=BATCH)
    today = now.date()
    payouts = []
    for days_ago in range(1, PAYOUT_DAYS + 1):
        count = rng.randint(20, 120)
        pending = rng.randint(0, count // 4) if days_ago <= 3 else 0
        payouts.append(
            Payout(
                date=today - datetime.timedelta(days=days_ago),
                amount=Decimal(sum(rng.randrange(5_00, 400_00) for _ in range(count))) / 100,
                processed_count=count - pending,
                pending_count=pending,
            )
        )
    Payout.objects.bulk_create(payouts, batch_size=BATCH)
    return {
        "campaigns": len(campaigns),
        "promoters": len(promoters),
        "view snapshots": len(snapshots),
        "payouts": len(payouts),
    }
