"""The shipped Supabase migrations on a real Postgres, and the sync against that database.

A scratch database (`kommo_hub_supa_it_<pid>`) is created on the server of DATABASE_URL, gets
Supabase's roles (anon, authenticated, service_role) if the server lacks them, and then every
file of supabase/migrations/ — twice, as `supabase db push` or a re-run in the SQL editor would.

PostgREST itself is not available here, so `scheduling/supabase.py` talks (through respx, at the
HTTP boundary) to a small stand-in that answers the requests it sends the way PostgREST does
(tests/scheduling/postgrest.py).
"""

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
import respx
from django.conf import settings as django_settings
from psycopg import sql

from kommo_hub.models import Lead
from routing.models import Salesperson
from scheduling import supabase, sync
from scheduling.models import AgendaBlock, Appointment, Interaction, SyncCursor
from scheduling.supabase import SupabaseConflict, SupabaseError
from scheduling.sync import SyncResult, sync_table
from tests.scheduling.postgrest import AGENDA_TABLES, PostgrestStandIn, agenda_prepare
from tests.scheduling.test_supabase_client import REST, SUPABASE_PROJECT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def server_dsn(dbname: str) -> str:
    db = django_settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        dbname=dbname,
        host=db.get("HOST") or "127.0.0.1",
        port=str(db.get("PORT") or 5432),
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
    )


@pytest.fixture(scope="module")
def agenda_dsn() -> Iterator[str]:
    """A scratch database with the migrations applied (twice); dropped afterwards."""
    name = f"kommo_hub_supa_it_{os.getpid()}"
    dsn = server_dsn(name)
    try:
        agenda_prepare(admin_dsn=server_dsn("postgres"), dsn=dsn, name=name)
        yield dsn
    finally:
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def agenda(agenda_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the scratch database (as its owner), emptied before each test."""
    with psycopg.connect(agenda_dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE public.historico_interacoes, public.agendamentos, public.agenda_vendedor"
        )
        conn.execute("SET timezone = 'UTC'")
        yield conn


def insert(conn: psycopg.Connection[Any], table: str, **values: Any) -> dict[str, Any]:
    columns = sql.SQL(", ").join(map(sql.Identifier, values))
    statement = sql.SQL(
        "INSERT INTO public.{} ({}) VALUES ({}) RETURNING row_to_json({}.*)::text"
    ).format(
        sql.Identifier(table),
        columns,
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
        sql.Identifier(table),
    )
    row = conn.execute(statement, list(values.values())).fetchone()
    assert row is not None
    result: dict[str, Any] = json.loads(row[0])
    return result


def booking(conn: psycopg.Connection[Any], start: str, end: str, **values: Any) -> dict[str, Any]:
    return insert(conn, "agendamentos", vendedor_id=41, inicio=start, fim=end, **values)


# --- the schema ---------------------------------------------------------------------------------


def test_the_migrations_create_the_three_tables_with_row_level_security_on(
    agenda: psycopg.Connection[Any],
) -> None:
    rows = agenda.execute(
        "SELECT c.relname, c.relrowsecurity, "
        "       (SELECT array_agg(p.polname || ':' || r.rolname ORDER BY p.polname) "
        "          FROM pg_policy p JOIN pg_roles r ON r.oid = ANY(p.polroles) "
        "         WHERE p.polrelid = c.oid) "
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = 'public' AND c.relname = ANY(%s) ORDER BY c.relname",
        [list(AGENDA_TABLES)],
    ).fetchall()

    assert rows == [
        (table, True, ["kommo_hub_service_role_all:service_role"]) for table in AGENDA_TABLES
    ]


def test_two_overlapping_active_appointments_of_one_salesperson_are_refused(
    agenda: psycopg.Connection[Any],
) -> None:
    booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z")

    with pytest.raises(psycopg.errors.ExclusionViolation) as caught:
        booking(agenda, "2026-12-01 10:15Z", "2026-12-01 10:45Z", status="confirmed")

    assert caught.value.diag.constraint_name == "agendamentos_sem_sobreposicao"


def test_adjacent_slots_other_salespeople_and_inactive_appointments_do_not_collide(
    agenda: psycopg.Connection[Any],
) -> None:
    booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z")
    booking(agenda, "2026-12-01 10:30Z", "2026-12-01 11:00Z")  # [10:00,10:30) then [10:30,11:00)
    insert(
        agenda,
        "agendamentos",
        vendedor_id=42,
        inicio="2026-12-01 10:00Z",
        fim="2026-12-01 10:30Z",
    )
    for status in ("cancelled", "done", "no_show"):
        booking(agenda, "2026-12-01 10:10Z", "2026-12-01 10:20Z", status=status)
    booking(agenda, "2026-12-01 10:10Z", "2026-12-01 10:20Z", deleted_at="2026-11-30 09:00Z")

    count = agenda.execute("SELECT count(*) FROM public.agendamentos").fetchone()
    assert count == (7,)


def test_reactivating_a_cancelled_appointment_over_a_taken_slot_is_refused(
    agenda: psycopg.Connection[Any],
) -> None:
    booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z")
    cancelled = booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z", status="cancelled")

    with pytest.raises(psycopg.errors.ExclusionViolation):
        agenda.execute(
            "UPDATE public.agendamentos SET status = 'booked' WHERE id = %s", [cancelled["id"]]
        )


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (
            "agendamentos",
            {"vendedor_id": 41, "inicio": "2026-12-01 10:00Z", "fim": "2026-12-01 10:00Z"},
        ),
        (
            "agendamentos",
            {
                "vendedor_id": 41,
                "inicio": "2026-12-01 10:00Z",
                "fim": "2026-12-01 10:30Z",
                "status": "maybe",
            },
        ),
        (
            "agenda_vendedor",
            {
                "vendedor_id": 41,
                "tipo": "ferias",
                "inicio": "2026-12-01 10:00Z",
                "fim": "2026-12-01 18:00Z",
            },
        ),
    ],
)
def test_impossible_rows_are_refused_by_check_constraints(
    agenda: psycopg.Connection[Any], table: str, values: dict[str, Any]
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        insert(agenda, table, **values)


def test_updated_at_is_the_writing_transactions_time_on_insert_and_on_every_update(
    agenda: psycopg.Connection[Any],
) -> None:
    with agenda.transaction():
        row = booking(
            agenda,
            "2026-12-01 10:00Z",
            "2026-12-01 10:30Z",
            created_at="2026-01-01 00:00Z",
            updated_at="2001-01-01 00:00Z",  # a client cannot backdate a row
        )
        now = agenda.execute("SELECT to_json(now())::text").fetchone()
    assert now is not None
    assert row["updated_at"] == json.loads(now[0])
    assert row["created_at"] == "2026-01-01T00:00:00+00:00"

    changed = agenda.execute(
        "UPDATE public.agendamentos SET status = 'confirmed', updated_at = '2001-01-01' "
        "WHERE id = %s RETURNING updated_at > %s::timestamptz, created_at",
        [row["id"], row["updated_at"]],
    ).fetchone()
    assert changed is not None
    assert changed[0] is True
    assert changed[1].isoformat() == "2026-01-01T00:00:00+00:00"


def appointments_seen_by(conn: psycopg.Connection[Any], role: str, *, grant: bool = False) -> int:
    with conn.transaction(force_rollback=True):
        if grant:
            conn.execute(
                sql.SQL("GRANT SELECT ON public.agendamentos TO {}").format(sql.Identifier(role))
            )
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        row = conn.execute("SELECT count(*) FROM public.agendamentos").fetchone()
    assert row is not None
    count: int = row[0]
    return count


def test_only_the_service_role_reads_and_writes_the_agenda(
    agenda: psycopg.Connection[Any],
) -> None:
    booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z")

    for role in ("anon", "authenticated"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            appointments_seen_by(agenda, role)
        # even when a grant lets them read the table, no policy lets them see a row
        assert appointments_seen_by(agenda, role, grant=True) == 0
    assert appointments_seen_by(agenda, "service_role") == 1
    with agenda.transaction(force_rollback=True):
        agenda.execute("SET LOCAL ROLE service_role")
        booking(agenda, "2026-12-01 11:00Z", "2026-12-01 11:30Z")


@pytest.fixture
def postgrest(agenda_dsn: str, settings: Any) -> Iterator[PostgrestStandIn]:
    settings.SUPABASE_URL = SUPABASE_PROJECT
    settings.SUPABASE_SERVICE_ROLE_KEY = "service-role-test-key"
    stand_in = PostgrestStandIn(agenda_dsn)
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        router.route().mock(side_effect=stand_in)
        yield stand_in


@pytest.fixture
def people() -> None:
    Salesperson.objects.create(pk=41, name="Ana Lima")
    Salesperson.objects.create(pk=42, name="Bruno Reis", kommo_user_id=9876543)
    Lead.objects.create(pk=3101, name="Maria Souza", kommo_lead_id=18754321)


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> list[SyncResult]:
    """Rows written by the database a moment ago count as settled; hooks record batches."""
    batches: list[SyncResult] = []
    monkeypatch.setattr(sync, "SETTLE", timedelta(0))
    monkeypatch.setattr(sync, "sync_hooks", [batches.append])
    return batches


# --- the client and the sync against the database -------------------------------------------------


@pytest.mark.usefixtures("agenda", "people")
def test_booking_through_the_client_hits_the_overlap_rule_and_the_key_rule_for_real(
    postgrest: PostgrestStandIn,
) -> None:
    row = {
        "vendedor_id": 41,
        "lead_id": 3101,
        "inicio": "2026-12-01T13:00:00Z",
        "fim": "2026-12-01T13:30:00Z",
        "idempotency_key": "booking:1",
    }
    stored = supabase.appointment_insert(row=row)

    with pytest.raises(SupabaseConflict) as overlap:
        supabase.appointment_insert(
            row={
                **row,
                "inicio": "2026-12-01T13:15:00Z",
                "fim": "2026-12-01T13:45:00Z",
                "idempotency_key": "booking:other",
            }
        )
    with pytest.raises(SupabaseConflict) as duplicate:
        supabase.appointment_insert(row={**row, "vendedor_id": 42})  # same key, no overlap
    with pytest.raises(SupabaseError) as invalid:
        supabase.appointment_update(id=stored["id"], values={"status": "maybe"})

    assert (stored["status"], stored["vendedor_id"], stored["deleted_at"]) == ("booked", 41, None)
    assert (overlap.value.status, overlap.value.code, overlap.value.is_overlap) == (
        400,
        "23P01",
        True,
    )
    assert (duplicate.value.status, duplicate.value.is_duplicate) == (409, True)
    assert (type(invalid.value), invalid.value.code) == (SupabaseError, "23514")


@pytest.mark.usefixtures("agenda", "people")
def test_a_cancelled_appointment_frees_its_time_for_the_next_booking(
    postgrest: PostgrestStandIn,
) -> None:
    row = {"vendedor_id": 41, "inicio": "2026-12-01T13:00:00Z", "fim": "2026-12-01T13:30:00Z"}
    first = supabase.appointment_insert(row={**row, "idempotency_key": "booking:1"})

    cancelled = supabase.appointment_update(id=first["id"], values={"status": "cancelled"})
    second = supabase.appointment_insert(
        row={**row, "inicio": "2026-12-01T13:15:00Z", "idempotency_key": "booking:2"}
    )
    taking_the_time = supabase.appointments_between(
        vendedor_id=41,
        start=datetime.fromisoformat("2026-12-01T13:29:00Z"),
        end=datetime.fromisoformat("2026-12-01T14:00:00Z"),
    )

    assert cancelled["status"] == "cancelled"
    assert cancelled["updated_at"] > first["updated_at"]
    assert (second["inicio"], second["fim"]) == (
        "2026-12-01T13:15:00+00:00",
        "2026-12-01T13:30:00+00:00",
    )
    assert [found["id"] for found in taking_the_time] == [second["id"]]
    fetched = supabase.appointment_get(id=first["id"])
    assert fetched is not None
    assert fetched["status"] == "cancelled"


@pytest.mark.usefixtures("people")
def test_the_sync_pages_through_rows_of_one_instant_by_id_and_mirrors_each_once(
    agenda: psycopg.Connection[Any],
    postgrest: PostgrestStandIn,
    settled_at_once: list[SyncResult],
) -> None:
    with agenda.transaction():  # one transaction: the five rows share their updated_at
        for hour in range(10, 15):
            booking(agenda, f"2026-12-01 {hour}:00Z", f"2026-12-01 {hour}:30Z")
    ids = [UUID(r[0]) for r in agenda.execute("SELECT id::text FROM agendamentos ORDER BY id")]

    result = sync_table(table="agendamentos", page_size=2)

    assert sorted(a.supabase_id for a in result.created if a.supabase_id) == ids
    assert (result.rows, len(postgrest.requests)) == (5, 3)
    assert Appointment.objects.filter(salesperson_id=41, status="booked").count() == 5
    cursor = SyncCursor.objects.get(table="agendamentos")
    assert cursor.last_id == str(ids[-1])

    again = sync_table(table="agendamentos", page_size=2)
    assert (again.rows, again.applied) == (0, 0)


@pytest.mark.usefixtures("people")
def test_changes_soft_and_hard_deletions_in_the_database_reach_the_mirror(
    agenda: psycopg.Connection[Any],
    postgrest: PostgrestStandIn,
    settled_at_once: list[SyncResult],
) -> None:
    kept = booking(agenda, "2026-12-01 10:00Z", "2026-12-01 10:30Z", lead_id=3101)
    moved = booking(agenda, "2026-12-01 11:00Z", "2026-12-01 11:30Z", kommo_lead_id=18754321)
    removed = booking(agenda, "2026-12-01 12:00Z", "2026-12-01 12:30Z")
    block = insert(
        agenda,
        "agenda_vendedor",
        vendedor_id=0,
        vendedor_kommo_user_id=9876543,
        tipo="bloqueio",
        inicio="2026-12-01 15:00Z",
        fim="2026-12-01 18:00Z",
        motivo="Consulta médica",
    )
    note = insert(
        agenda, "historico_interacoes", agendamento_id=kept["id"], tipo="nota", texto="Confirmou"
    )
    for table in sync.SYNC_ORDER:
        sync_table(table=table)
    assert Appointment.objects.count() == 3
    assert AgendaBlock.objects.get(supabase_id=block["id"]).salesperson_id == 42
    assert Interaction.objects.get(supabase_id=note["id"]).lead_id == 3101

    agenda.execute("UPDATE agendamentos SET status = 'cancelled' WHERE id = %s", [kept["id"]])
    agenda.execute(
        "UPDATE agendamentos SET inicio = inicio + interval '2 hours', fim = fim + interval "
        "'2 hours' WHERE id = %s",
        [moved["id"]],
    )
    agenda.execute("UPDATE agenda_vendedor SET deleted_at = now() WHERE id = %s", [block["id"]])
    agenda.execute("DELETE FROM historico_interacoes WHERE id = %s", [note["id"]])
    agenda.execute("DELETE FROM agendamentos WHERE id = %s", [removed["id"]])

    incremental = sync_table(table="agendamentos")
    sync_table(table="agenda_vendedor")
    assert ([str(a.supabase_id) for a in incremental.cancelled], len(incremental.changed)) == (
        [kept["id"]],
        1,
    )
    assert Appointment.objects.get(supabase_id=removed["id"]).status == "booked"  # unseen yet
    assert AgendaBlock.objects.get(supabase_id=block["id"]).deleted is True

    full = sync_table(table="agendamentos", full=True)
    sync_table(table="historico_interacoes", full=True)

    assert [str(a.supabase_id) for a in full.cancelled] == [removed["id"]]
    assert dict(Appointment.objects.values_list("supabase_id", "status")) == {
        UUID(kept["id"]): "cancelled",
        UUID(moved["id"]): "booked",
        UUID(removed["id"]): "cancelled",
    }
    assert Appointment.objects.get(supabase_id=moved["id"]).starts_at.isoformat() == (
        "2026-12-01T13:00:00+00:00"
    )
    assert not Interaction.objects.exists()
    assert [len(batch.cancelled) for batch in settled_at_once if batch.cancelled] == [1, 1]


def test_without_the_service_role_the_stand_in_like_postgrest_refuses(
    agenda: psycopg.Connection[Any], postgrest: PostgrestStandIn
) -> None:
    postgrest.role = "anon"

    with pytest.raises(SupabaseError) as caught:
        supabase.rows_changed_since(table="agendamentos", updated_at=None, last_id="", limit=5)

    assert (caught.value.status, caught.value.code, caught.value.message) == (
        403,
        "42501",
        "permission denied for table agendamentos",
    )
