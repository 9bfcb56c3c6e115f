"""The release step: migrate and collect static files, one machine at a time.

Run before (re)starting the web processes of a new version: `scripts/start release` (the
Procfile's `release:` line, the web unit's ExecStartPre). Several machines releasing at once
queue on a Postgres advisory lock instead of racing through the same migrations.
"""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

# Any constant shared by every machine of the deployment; "KHrelease" in ASCII.
RELEASE_LOCK_KEY = 0x4B4872656C65617365 & 0x7FFF_FFFF_FFFF_FFFF


class Command(BaseCommand):
    help = "Apply migrations and collect static files (serialized across machines on Postgres)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--skip-static", action="store_true", help="only migrate")

    def handle(self, *args: Any, skip_static: bool, **options: Any) -> None:
        locked = connection.vendor == "postgresql"
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [RELEASE_LOCK_KEY])
        try:
            call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))
            if not skip_static:
                call_command("collectstatic", interactive=False, verbosity=0)
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [RELEASE_LOCK_KEY])
        self.stdout.write("Release done: migrations applied, static files collected.")
