"""Erase a person's data on their request (LGPD): every lead of theirs, found by lead id, phone
or e-mail (and then by shared contact, phone and e-mail)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from kommo_hub.logging import mask_email, mask_phone
from privacy.selectors import leads_of_person
from privacy.services import ErasureReport, lead_anonymize, lead_delete


def external_lines(report: ErasureReport) -> list[str]:
    """What the operator must still erase outside the hub."""
    external = report.external
    lines = []
    if external.get("kommo_lead_id") or external.get("kommo_contact_id"):
        lines.append(
            f"  Kommo: lead {external.get('kommo_lead_id') or '-'}, "
            f"contact {external.get('kommo_contact_id') or '-'}"
        )
    if external.get("supabase_appointments"):
        lines.append("  Supabase agendamentos: " + ", ".join(external["supabase_appointments"]))
    if external.get("supabase_interactions"):
        lines.append(
            "  Supabase historico_interacoes: " + ", ".join(external["supabase_interactions"])
        )
    return lines


def rows_line(report: ErasureReport) -> str:
    changed = [f"{table} {n}" for table, n in sorted(report.rows.items()) if n]
    return ", ".join(changed) or "nothing left to erase"


class Command(BaseCommand):
    help = (
        "LGPD: anonymize (or --delete) every lead of a person, found by --lead, --phone or "
        "--email. Prints what must also be erased in Kommo and Supabase."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--lead", type=int, default=None, help="a lead id of the person")
        parser.add_argument("--phone", default="", help="the person's phone")
        parser.add_argument("--email", default="", help="the person's e-mail")
        parser.add_argument("--reason", default="", help="why (e.g. the request's protocol)")
        parser.add_argument("--by", default="", help="who asked or who runs it")
        parser.add_argument(
            "--delete",
            action="store_true",
            help="also delete the contact, notes, interactions and raw requests (figures stay)",
        )
        parser.add_argument("--dry-run", action="store_true", help="show, write nothing")

    def handle(
        self,
        *args: Any,
        lead: int | None,
        phone: str,
        email: str,
        reason: str,
        by: str,
        delete: bool,
        dry_run: bool,
        **opts: Any,
    ) -> None:
        if lead is None and not phone.strip() and not email.strip():
            raise CommandError("say whose data to erase: --lead 42, --phone or --email")
        if not reason.strip():
            raise CommandError("--reason is required (it goes to the erasure log)")
        leads = list(leads_of_person(lead_id=lead, phone=phone, email=email))
        if not leads:
            who = f"lead #{lead}" if lead is not None else mask_phone(phone) or mask_email(email)
            raise CommandError(f"no lead found for {who}")
        erase = lead_delete if delete else lead_anonymize
        now = timezone.now()
        prefix = "[dry run] " if dry_run else ""
        outside: list[str] = []
        for found in leads:
            report = erase(
                lead=found, reason=reason.strip(), now=now, requested_by=by, dry_run=dry_run
            )
            self.stdout.write(f"{prefix}lead #{found.pk}: {rows_line(report)}")
            outside += [f"lead #{found.pk}", *lines] if (lines := external_lines(report)) else []
        if outside:
            self.stdout.write("Also erase outside the hub (the hub cannot):")
            self.stdout.write("\n".join(outside))
        verb = "would be" if dry_run else "were"
        action = "deleted" if delete else "anonymized"
        self.stdout.write(self.style.SUCCESS(f"{len(leads)} lead(s) {verb} {action}"))
