"""Sync the agenda from Supabase now: every table (or the ones named), from where it stopped."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from scheduling import supabase
from scheduling.sync import PAGE_SIZE, SYNC_ORDER, SyncResult, sync_table


class _Unterminated:
    """The command's stderr for tqdm: its redraws must not get a newline each."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text, ending="")

    def flush(self) -> None:
        self._out.flush()


class Command(BaseCommand):
    help = (
        "Bring the hub's mirror of the Supabase agenda (agenda_vendedor, agendamentos, "
        "historico_interacoes) up to date. --full reads everything again and marks what "
        "Supabase no longer has as deleted (appointments: cancelled)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="reset the cursors, read every row, and reconcile deletions",
        )
        parser.add_argument(
            "--table",
            action="append",
            choices=SYNC_ORDER,
            dest="tables",
            help="only this table (repeatable); default: all three",
        )
        parser.add_argument(
            "--page-size", type=int, default=PAGE_SIZE, help=f"rows per request ({PAGE_SIZE})"
        )

    def handle(
        self, *args: Any, full: bool, tables: list[str] | None, page_size: int, **opts: Any
    ) -> None:
        if not supabase.supabase_configured():
            raise CommandError(
                "Supabase is not configured: set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
            )
        if not 1 <= page_size <= 1000:
            raise CommandError("--page-size must be between 1 and 1000 (Supabase's row limit)")
        chosen = [table for table in SYNC_ORDER if table in (tables or SYNC_ORDER)]
        failed = False
        for table in chosen:
            with tqdm(unit="row", desc=table, file=_Unterminated(self.stderr)) as bar:
                try:
                    result = sync_table(
                        table=table, full=full, page_size=page_size, on_page=bar.update
                    )
                except supabase.SupabaseError as exc:
                    bar.close()
                    self.stderr.write(self.style.ERROR(f"{table}: {exc}"))
                    failed = True
                    continue
            self.stdout.write(self._summary(table, result))
        if failed:
            raise CommandError("some tables could not be synced; run again later")

    def _summary(self, table: str, result: SyncResult) -> str:
        if result.busy:
            return self.style.WARNING(f"{table}: another process is syncing it; left to it")
        text = (
            f"{table}: {result.rows} row(s) read, {result.applied} applied, "
            f"appointments {len(result.created)} new, {len(result.changed)} changed, "
            f"{len(result.cancelled)} cancelled"
        )
        if result.skipped:
            return self.style.WARNING(f"{text}; {result.skipped} unreadable row(s) skipped")
        return self.style.SUCCESS(text)
