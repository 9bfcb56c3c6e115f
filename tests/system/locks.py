"""Holding a row lock from the test so that a worker's handler blocks mid-event (Postgres)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from kommo_hub.models import Lead


@contextmanager
def lead_row_locked(kommo_lead_id: int) -> Iterator[None]:
    """Hold `SELECT … FOR UPDATE` on the lead in another connection until the block exits."""
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                Lead.objects.select_for_update().get(kommo_lead_id=kommo_lead_id)
                locked.set()
                release.wait(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=hold, name="lead-lock")
    holder.start()
    try:
        assert locked.wait(timeout=10), f"could not lock the lead: {errors}"
        yield
    finally:
        release.set()
        holder.join(timeout=10)
    assert not errors, errors


def lock_waiters() -> int:
    """Sessions on this database blocked on a row lock (the worker's handler, once it waits)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])
