"""Create an API key for a machine client (n8n); the key is printed once and never stored."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kommo_hub.models import ApiKey


class Command(BaseCommand):
    help = (
        "Create an API key (header 'Authorization: Api-Key <key>'). The key is printed once: "
        "only its SHA-256 is stored."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="who uses the key, e.g. n8n")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("give the key a name, e.g. n8n")
        if len(name) > 100:
            raise CommandError("the name is longer than 100 characters")
        api_key, key = ApiKey.generate(name=name)
        self.stderr.write(
            f"API key #{api_key.pk} '{api_key.name}' created. Copy it now: it is not shown again."
        )
        self.stdout.write(key)
