"""The shipped Supabase migrations on a real Postgres, and the sync against that database.

A scratch database (`kommo_hub_supa_it_<pid>`) is created on the server of DATABASE_URL, gets
Supabase's roles (anon, authenticated, service_role) if the server lacks them, and then every
file of supabase/migrations/ — twice, as `supabase db push` or a re-run in the SQL editor would.

PostgREST itself is not available here, so `scheduling/supabase.py` talks (through respx, at the
HTTP boundary) to a small stand-in that answers the requests it sends the way PostgREST does:
the request's role is set (so row-level security applies), filters and keyset `or=` become SQL,
rows come back as Postgres' JSON, and errors carry PostgREST's codes and HTTP statuses.
"""

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import httpx
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
from tests.scheduling.test_supabase_client import REST, SUPABASE_PROJECT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

MIGRATIONS = sorted((Path(__file__).resolve().parents[2] / "supabase" / "migrations").glob("*.sql"))
AGENDA_TABLES = ("agenda_vendedor", "agendamentos", "historico_interacoes")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


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
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for role in ("anon", "authenticated", "service_role"):  # they exist in every Supabase
            admin.execute(
                sql.SQL(
                    "DO $$ BEGIN CREATE ROLE {} NOLOGIN; "
                    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                ).format(sql.Identifier(role))
            )
    dsn = server_dsn(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(2):
                for migration in MIGRATIONS:
                    conn.execute(migration.read_text(encoding="utf-8").encode())
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


# --- a PostgREST stand-in on the scratch database -------------------------------------------------


def _split_top_level(text: str) -> list[str]:
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


OPERATORS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "neq": "<>"}


def _condition(column: str, operator: str, value: str) -> tuple[sql.Composable, list[Any]]:
    assert IDENTIFIER.match(column), column
    name = sql.Identifier(column)
    if operator == "is":
        assert value == "null", value
        return sql.SQL("{} IS NULL").format(name), []
    if operator == "in":
        values = [_unquote(v) for v in _split_top_level(value[1:-1])]
        return sql.SQL("{}::text = ANY(%s)").format(name), [values]
    return sql.SQL("{} {} %s").format(name, sql.SQL(OPERATORS[operator])), [_unquote(value)]


def _logic(kind: str, inner: str) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for item in _split_top_level(inner):
        if item.startswith(("and(", "or(")):
            nested_kind, rest = item.split("(", 1)
            part, more = _logic(nested_kind, rest[:-1])
        else:
            column, operator, value = item.split(".", 2)
            part, more = _condition(column, operator, value)
        parts.append(sql.SQL("({})").format(part))
        params += more
    return sql.SQL(f" {kind.upper()} ").join(parts), params


# PostgREST's HTTP status for a Postgres error (docs: references/errors), the codes met here.
def _status(sqlstate: str) -> int:
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate == "42501":
        return 403
    if sqlstate == "42P01":
        return 404
    if sqlstate[:2] in ("08", "53"):
        return 503
    if sqlstate[:2] in ("25", "40", "57", "58", "XX"):
        return 500
    return 400


class PostgrestStandIn:
    """Answers scheduling/supabase.py's requests from the scratch database, as PostgREST."""

    def __init__(self, dsn: str, *, role: str = "service_role") -> None:
        self.dsn, self.role = dsn, role
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        table = request.url.path.rsplit("/", 1)[-1]
        assert table in AGENDA_TABLES, table
        where: list[sql.Composable] = []
        params: list[Any] = []
        order: list[sql.Composable] = []
        limit: sql.Composable = sql.SQL("")
        for key, value in parse_qsl(request.url.query.decode(), keep_blank_values=True):
            if key == "select":
                assert value == "*"
            elif key == "order":
                for term in value.split(","):
                    column, direction = term.split(".")
                    assert IDENTIFIER.match(column), column
                    assert direction in ("asc", "desc"), direction
                    order.append(
                        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(direction))
                    )
            elif key == "limit":
                limit = sql.SQL("LIMIT {}").format(sql.Literal(int(value)))
            elif key in ("or", "and"):
                condition, more = _logic(key, value[1:-1])
                where.append(condition)
                params += more
            else:
                operator, _, operand = value.partition(".")
                condition, more = _condition(key, operator, operand)
                where.append(condition)
                params += more
        filters = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
        target = sql.SQL("public.{}").format(sql.Identifier(table))
        if request.method == "GET":
            statement = sql.SQL(
                "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT * FROM {} WHERE {} {} {}) t"
            ).format(
                target,
                filters,
                sql.SQL("ORDER BY ") + sql.SQL(", ").join(order) if order else sql.SQL(""),
                limit,
            )
        else:
            body = json.loads(request.content)
            columns = sql.SQL(", ").join(map(sql.Identifier, body))
            source = sql.SQL("SELECT {} FROM json_populate_record(null::{}, %s::json)").format(
                columns, target
            )
            if request.method == "POST":
                change = sql.SQL("INSERT INTO {} ({}) {} RETURNING *").format(
                    target, columns, source
                )
                params = [json.dumps(body)]
            else:
                assert request.method == "PATCH"
                change = sql.SQL("UPDATE {} SET ({}) = ({}) WHERE {} RETURNING *").format(
                    target, columns, source, filters
                )
                params = [json.dumps(body), *params]
            statement = sql.SQL(
                "WITH changed AS ({}) SELECT coalesce(json_agg(changed), '[]')::text FROM changed"
            ).format(change)
        try:
            with psycopg.connect(self.dsn) as conn, conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.role)))
                conn.execute("SET LOCAL timezone = 'UTC'")
                row = conn.execute(statement, params).fetchone()
        except psycopg.Error as exc:
            code = exc.sqlstate or "XX000"
            return httpx.Response(
                _status(code),
                json={
                    "code": code,
                    "details": exc.diag.message_detail,
                    "hint": exc.diag.message_hint,
                    "message": exc.diag.message_primary,
                },
            )
        assert row is not None
        rows = json.loads(row[0])
        span = f"0-{len(rows) - 1}/*" if rows and request.method == "GET" else "*/*"
        status = 201 if request.method == "POST" else 200
        return httpx.Response(
            status,
            content=row[0].encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "Content-Range": span},
        )


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
