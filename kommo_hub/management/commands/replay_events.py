"""Put inbound events back through processing (handlers are idempotent)."""

from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from kommo_hub.intake.processing import event_replay
from kommo_hub.models import EventStatus, InboundEvent

CHUNK = 200


def _parse_since(value: str) -> datetime:
    problem = f"--since {value!r}: use YYYY-MM-DD or an ISO-8601 date-time"
    try:  # the parsers raise ValueError for well-formed impossible dates such as 2026-13-45
        moment = parse_datetime(value)
        day = parse_date(value) if moment is None else None
    except ValueError as exc:
        raise CommandError(f"{problem} ({exc})") from exc
    if moment is None:
        if day is None:
            raise CommandError(problem)
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Replay inbound events: failed/dead ones, chosen ids, or everything since a moment."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--failed", action="store_true", help="failed and dead events")
        parser.add_argument("--ids", default="", help="comma-separated event ids")
        parser.add_argument("--since", default="", help="events received since (date or date-time)")
        parser.add_argument(
            "--dry-run", action="store_true", help="only count what would be replayed"
        )

    def handle(
        self, *args: Any, failed: bool, ids: str, since: str, dry_run: bool, **opts: Any
    ) -> None:
        if not (failed or ids or since):
            raise CommandError(
                "say what to replay: --failed, --ids 1,2,3 and/or --since 2026-01-01"
            )
        events = InboundEvent.objects.all()
        if failed:
            events = events.filter(status__in=[EventStatus.FAILED, EventStatus.DEAD])
        if ids:
            try:
                wanted = [int(part) for part in ids.split(",") if part.strip()]
            except ValueError as exc:
                raise CommandError(f"--ids must be comma-separated numbers: {exc}") from exc
            events = events.filter(pk__in=wanted)
        if since:
            events = events.filter(created_at__gte=_parse_since(since))
        selected = list(events.order_by("pk").values_list("pk", flat=True))
        if dry_run:
            self.stdout.write(f"{len(selected)} event(s) would be replayed")
            return
        replayed = 0
        with tqdm(total=len(selected), unit="event", disable=not selected, file=self.stderr) as bar:
            for start in range(0, len(selected), CHUNK):
                chunk = selected[start : start + CHUNK]
                replayed += event_replay(event_ids=chunk)
                bar.update(len(chunk))
        self.stdout.write(self.style.SUCCESS(f"{replayed} event(s) queued for processing again"))
