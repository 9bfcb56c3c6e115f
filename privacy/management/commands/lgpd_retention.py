"""Anonymize the leads idle for longer than the retention period (LGPD_RETENTION_DAYS)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from privacy.management.commands.lgpd_erase import external_lines
from privacy.services import retention_run


class Command(BaseCommand):
    help = (
        "LGPD: anonymize leads without activity for --older-than-days days (default "
        "LGPD_RETENTION_DAYS) and clear old raw requests tied to no lead."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than-days", type=int, default=None)
        parser.add_argument("--dry-run", action="store_true", help="count, write nothing")

    def handle(self, *args: Any, older_than_days: int | None, dry_run: bool, **opts: Any) -> None:
        days = settings.LGPD_RETENTION_DAYS if older_than_days is None else older_than_days
        if days < 0:
            raise CommandError("--older-than-days must be 0 (off) or more")
        if days == 0:
            self.stdout.write("retention is off (0 days): nothing to do")
            return
        report = retention_run(now=timezone.now(), days=days, dry_run=dry_run)
        changed = [erased for erased in report.leads if erased.changed]
        verb = "would be" if dry_run else "were"
        self.stdout.write(
            f"cutoff {report.cutoff:%Y-%m-%d %H:%M} UTC: {len(changed)} lead(s) {verb} "
            f"anonymized, {report.requests_cleared} raw request(s) {verb} cleared"
            + (f", {report.skipped} skipped (active again)" if report.skipped else "")
        )
        outside: list[str] = []
        for erased in changed:
            if lines := external_lines(erased):
                outside += [f"lead #{erased.lead_id}", *lines]
        if outside:
            self.stdout.write("Also erase outside the hub (the hub cannot):")
            self.stdout.write("\n".join(outside))
