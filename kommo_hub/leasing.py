"""Claiming rows for work with a lease, and the backoff between attempts.

A claim is one conditional UPDATE, so two workers can never both win, on SQLite or Postgres.
A worker that dies keeps its claim only until the lease ends; the scheduler then re-enqueues.
"""

import random
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)


def due_filter(*, waiting: Sequence[str], working: str, now: datetime) -> Q:
    """Rows that may be claimed now: waiting and due, or working with an expired lease."""
    return (
        Q(status__in=waiting, next_attempt_at__isnull=True)
        | Q(status__in=waiting, next_attempt_at__lte=now)
        | Q(status=working, locked_until__lt=now)
    )


def claim_row(
    model: type[models.Model], *, pk: int, waiting: Sequence[str], working: str
) -> str | None:
    """Take the row for this worker; return the claim token, or None if someone else has it."""
    now = timezone.now()
    token = secrets.token_hex(16)
    won = model._default_manager.filter(
        due_filter(waiting=waiting, working=working, now=now), pk=pk
    ).update(
        status=working,
        claim_token=token,
        locked_until=lease_until(now),
        attempts=F("attempts") + 1,
    )
    return token if won == 1 else None


def backoff_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    ceiling = min(
        settings.RETRY_MAX_SECONDS, settings.RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    )
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311
