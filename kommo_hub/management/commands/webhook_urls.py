"""Where to point Kommo, RD Station, the website, n8n and Supabase (secrets are not printed)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

RECEIVERS = [
    ("Kommo (Settings → Integrations → Web hooks)", "kommo", "KOMMO_WEBHOOK_SECRET"),
    ("RD Station (Integrações → Webhooks)", "rdstation", "RDSTATION_WEBHOOK_SECRET"),
    ("Website / generic forms", "forms", "FORMS_WEBHOOK_SECRET"),
    ("n8n callbacks", "n8n", "N8N_CALLBACK_SECRET"),
    ("Supabase database webhooks", "supabase", "SUPABASE_WEBHOOK_SECRET"),
]


class Command(BaseCommand):
    help = "Print the webhook URLs to configure in each system."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Webhook URLs (replace <…> with the value of that variable in .env):")
        for label, name, variable in RECEIVERS:
            state = (
                "" if getattr(settings, variable) else "  [not configured: receiver answers 403]"
            )
            self.stdout.write(
                f"  {label}:\n    {settings.HUB_PUBLIC_URL}/webhooks/{name}/<{variable}>/{state}"
            )
