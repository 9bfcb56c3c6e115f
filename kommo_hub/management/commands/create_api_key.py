"""Create an API key for a machine client; the key is printed once and never stored."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kommo_hub.models import ApiKey, ApiKeyScope


class Command(BaseCommand):
    help = (
        "Create an API key (header 'Authorization: Api-Key <key>'). The key is printed once: "
        "only its SHA-256 is stored. --scope scheduling (the default, for n8n) or reporting "
        "(read-only reporting API)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="who uses the key, e.g. n8n")
        parser.add_argument(
            "--scope",
            choices=ApiKeyScope.values,
            default=ApiKeyScope.SCHEDULING,
            help="what the key may call (default: scheduling, n8n's scheduling API)",
        )

    def handle(self, *args: Any, name: str, scope: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("give the key a name, e.g. n8n")
        if len(name) > 100:
            raise CommandError("the name is longer than 100 characters")
        api_key, key = ApiKey.generate(name=name, scope=scope)
        self.stderr.write(
            f"API key #{api_key.pk} '{api_key.name}' created. Copy it now: it is not shown again."
        )
        self.stdout.write(key)
