"""Check the n8n workflow at N8N_WEBHOOK_URL from this hub: a pass/fail table, exit 1 on a fail."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kommo_hub.ops.n8n_check import NotConfigured, n8n_check_run


class Command(BaseCommand):
    help = (
        "Probe the n8n workflow at N8N_WEBHOOK_URL without messaging anyone (a wrong or missing "
        "secret must get 403, an unknown action 422, the hub's claim URL 404 for an unknown "
        "key). With --send-to +55…, also send one real proactive_message to that phone and wait "
        "for n8n's callback."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--send-to",
            default="",
            metavar="PHONE",
            help="your own WhatsApp number: a real test message goes to it (end to end)",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=120.0,
            metavar="SECONDS",
            help="how long to wait for n8n's callback with --send-to (default: 120)",
        )

    def handle(self, *args: Any, send_to: str, wait: float, **options: Any) -> None:
        try:
            checks = n8n_check_run(send_to=send_to, wait_seconds=wait)
        except NotConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"n8n workflow at {settings.N8N_WEBHOOK_URL}")
        width = max(len(c.name) for c in checks)
        header = f"  {'check':<{width}}  {'expected':<13}  {'got':<20}  result"
        self.stdout.write(header)
        for check in checks:
            result = self.style.SUCCESS("pass") if check.ok else self.style.ERROR("FAIL")
            line = f"  {check.name:<{width}}  {check.expected:<13}  {check.got:<20}  {result}"
            self.stdout.write(line)
            if check.hint and not check.ok:
                self.stdout.write(f"  {'':<{width}}  ↳ {check.hint}")
        failed = [c for c in checks if not c.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(checks)} checks failed")
        self.stdout.write(self.style.SUCCESS(f"all {len(checks)} checks passed"))
