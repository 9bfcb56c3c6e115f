"""Supabase → hub sync (scheduling/sync.py): pages, cursor, idempotency, deletions, reporting,
the database webhook, the command and the periodic job — against recorded PostgREST answers."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client

from kommo_hub.models import EventStatus, InboundEvent, Lead
from routing.models import Salesperson
from scheduling import sync
from scheduling.models import AgendaBlock, Appointment, Interaction, SyncCursor
from scheduling.sync import (
    AppointmentRow,
    SyncResult,
    appointment_apply,
    supabase_sync_all,
    sync_table,
)
from tests.scheduling.test_supabase_client import (
    REST,
    query,
    recorded,
    recorded_rows,
    webhook_body,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
A1, A2, A3, A4, A5 = (f"0b6f3c1e-8f2a-4d59-9a67-1c2d3e4f5a0{n}" for n in range(1, 6))
B1, B2 = "5d1e7a90-3c4b-4e2f-8a1d-6b7c8d9e0f11", "5d1e7a90-3c4b-4e2f-8a1d-6b7c8d9e0f12"
I1, I2 = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c51", "9a8b7c6d-5e4f-4a3b-9c2d-1e0f2a3b4c52"
WEBHOOK_URL = "/webhooks/supabase/supabase-test-secret/"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def after(stamp: str, ident: str) -> str:
    """The or= filter of a page that starts after (stamp, ident)."""
    return f'(updated_at.gt."{stamp}",and(updated_at.eq."{stamp}",id.gt.{ident}))'


def ids(appointments: list[Appointment]) -> list[str]:
    return [str(appointment.supabase_id) for appointment in appointments]


def cursor_of(table: str) -> tuple[datetime | None, str, int, str]:
    cursor = SyncCursor.objects.get(table=table)
    return cursor.updated_at, cursor.last_id, cursor.rows_synced, cursor.last_error


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def rest(settings: Any) -> Iterator[respx.MockRouter]:
    settings.SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
    settings.SUPABASE_SERVICE_ROLE_KEY = "service-role-test-key"
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        yield router


@pytest.fixture
def people() -> dict[str, Any]:
    """The hub's side of the recorded rows (explicit ids: the rows name them)."""
    return {
        "ana": Salesperson.objects.create(pk=41, name="Ana Lima"),
        "bruno": Salesperson.objects.create(pk=42, name="Bruno Reis", kommo_user_id=9876543),
        "maria": Lead.objects.create(pk=3101, name="Maria Souza", kommo_lead_id=18754321),
        "joao": Lead.objects.create(pk=3102, name="João Alves", kommo_lead_id=18754399),
    }


@pytest.fixture
def no_hooks(monkeypatch: pytest.MonkeyPatch) -> list[SyncResult]:
    """Hooks replaced by one that records each batch it is given."""
    batches: list[SyncResult] = []
    monkeypatch.setattr(sync, "sync_hooks", [batches.append])
    return batches


def serve(rest: respx.MockRouter, table: str, *answers: str) -> respx.Route:
    return rest.get(f"/{table}").mock(side_effect=[recorded(answer) for answer in answers])


def first_sync(rest: respx.MockRouter) -> SyncResult:
    serve(rest, "agendamentos", "agendamentos_page_1", "agendamentos_page_2")
    return sync_table(table="agendamentos", page_size=3)


# --- incremental sync ----------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen", "no_hooks")
def test_a_first_sync_mirrors_every_appointment_page_by_page_and_reports_them_created(
    rest: respx.MockRouter, people: dict[str, Any]
) -> None:
    route = serve(rest, "agendamentos", "agendamentos_page_1", "agendamentos_page_2")

    result = sync_table(table="agendamentos", page_size=3)

    assert ids(result.created) == [A1, A2, A3, A4]
    assert (result.changed, result.cancelled) == ([], [])
    assert (result.rows, result.applied, result.skipped, result.busy) == (4, 4, 0, False)
    assert [query(call.request).get("or") for call in route.calls] == [
        None,
        after("2026-11-20T14:00:00.100001+00:00", A3),
    ]
    mirrored = {
        str(row["supabase_id"]): row
        for row in Appointment.objects.values(
            "supabase_id",
            "salesperson_id",
            "lead_id",
            "kommo_lead_id",
            "kommo_contact_id",
            "starts_at",
            "ends_at",
            "status",
            "source",
            "title",
            "notes",
            "idempotency_key",
            "supabase_updated_at",
        )
    }
    assert mirrored[A1] == {
        "supabase_id": UUID(A1),
        "salesperson_id": 41,
        "lead_id": 3101,
        "kommo_lead_id": 18754321,
        "kommo_contact_id": 22334455,
        "starts_at": at("2026-12-01T13:00:00+00:00"),
        "ends_at": at("2026-12-01T13:30:00+00:00"),
        "status": "booked",
        "source": "whatsapp",
        "title": "Reunião com Maria Souza",
        "notes": "Quer conhecer o plano empresarial.",
        "idempotency_key": "booking:lead-3101:1",
        "supabase_updated_at": at("2026-11-20T13:05:11.482913+00:00"),
    }
    # vendedor_id 9999 is no salesperson of the hub: found by vendedor_kommo_user_id instead;
    # no lead_id: the lead is found by its Kommo id.
    assert {k: mirrored[A2][k] for k in ("salesperson_id", "lead_id", "status", "notes")} == {
        "salesperson_id": 42,
        "lead_id": 3102,
        "status": "confirmed",
        "notes": "",
    }
    assert {k: mirrored[A4][k] for k in ("lead_id", "kommo_lead_id", "status")} == {
        "lead_id": None,
        "kommo_lead_id": None,
        "status": "done",
    }
    assert cursor_of("agendamentos") == (at("2026-11-21T09:12:45.5+00:00"), A4, 4, "")
    assert SyncCursor.objects.get(table="agendamentos").last_run_at == NOW


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_running_again_asks_from_the_cursor_and_changes_nothing_when_nothing_is_new(
    rest: respx.MockRouter,
) -> None:
    first_sync(rest)
    route = serve(rest, "agendamentos", "agendamentos_empty")

    result = sync_table(table="agendamentos", page_size=3)

    assert (result.created, result.changed, result.cancelled, result.rows) == ([], [], [], 0)
    assert query(route.calls.last.request)["or"] == after("2026-11-21T09:12:45.500000+00:00", A4)
    assert Appointment.objects.count() == 4


@pytest.mark.usefixtures("frozen", "people")
def test_cancellations_and_moves_are_reported_once_and_a_repeated_page_changes_nothing(
    rest: respx.MockRouter, no_hooks: list[SyncResult]
) -> None:
    first_sync(rest)
    serve(rest, "agendamentos", "agendamentos_changes")

    result = sync_table(table="agendamentos", page_size=3)

    assert (ids(result.created), ids(result.changed), ids(result.cancelled)) == ([], [A2], [A1])
    assert Appointment.objects.get(supabase_id=A1).status == "cancelled"
    moved = Appointment.objects.get(supabase_id=A2)
    assert (moved.starts_at, moved.ends_at) == (
        at("2026-12-01T15:00:00+00:00"),
        at("2026-12-01T15:45:00+00:00"),
    )
    assert [ids(batch.cancelled) for batch in no_hooks] == [[], [], [A1]]

    SyncCursor.objects.filter(table="agendamentos").update(
        updated_at=at("2026-11-21T09:12:45.5+00:00"), last_id=A4
    )
    serve(rest, "agendamentos", "agendamentos_changes")
    again = sync_table(table="agendamentos", page_size=3)

    assert (again.rows, again.applied, again.created, again.changed, again.cancelled) == (
        2,
        0,
        [],
        [],
        [],
    )
    assert len(no_hooks) == 3  # a batch that changed no appointment calls no hook


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_an_older_version_of_a_row_never_overwrites_the_mirrors_newer_one(
    rest: respx.MockRouter,
) -> None:
    first_sync(rest)
    serve(rest, "agendamentos", "agendamentos_changes")
    sync_table(table="agendamentos")
    old = AppointmentRow.model_validate(recorded_rows("agendamentos_page_1")[0])

    with transaction.atomic():
        change, appointment = appointment_apply(row=old)

    assert change == "stale"
    assert appointment is not None
    assert appointment.status == "cancelled"
    assert Appointment.objects.get(supabase_id=A1).status == "cancelled"


@pytest.mark.usefixtures("frozen", "people")
def test_a_batch_that_fails_rolls_back_with_its_cursor_and_the_next_run_resumes_there(
    rest: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reminders_bug(result: SyncResult) -> None:
        if ids(result.created) == [A4]:
            raise RuntimeError("reminders bug")

    monkeypatch.setattr(sync, "sync_hooks", [reminders_bug])
    serve(rest, "agendamentos", "agendamentos_page_1", "agendamentos_page_2")

    with pytest.raises(RuntimeError, match="reminders bug"):
        sync_table(table="agendamentos", page_size=3)

    assert sorted(ids(list(Appointment.objects.all()))) == [A1, A2, A3]
    assert cursor_of("agendamentos") == (
        at("2026-11-20T14:00:00.100001+00:00"),
        A3,
        3,
        "RuntimeError: reminders bug",
    )

    monkeypatch.setattr(sync, "sync_hooks", [])
    route = serve(rest, "agendamentos", "agendamentos_page_2")
    result = sync_table(table="agendamentos", page_size=3)

    assert ids(result.created) == [A4]
    assert query(route.calls.last.request)["or"] == after("2026-11-20T14:00:00.100001+00:00", A3)
    assert cursor_of("agendamentos") == (at("2026-11-21T09:12:45.5+00:00"), A4, 4, "")


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_supabase_failing_midway_keeps_the_pages_already_applied_and_notes_the_error(
    rest: respx.MockRouter,
) -> None:
    serve(rest, "agendamentos", "agendamentos_page_1", "error_database_unreachable")

    with pytest.raises(sync.supabase.SupabaseUnavailable):
        sync_table(table="agendamentos", page_size=3)

    assert Appointment.objects.count() == 3
    assert cursor_of("agendamentos") == (
        at("2026-11-20T14:00:00.100001+00:00"),
        A3,
        3,
        "SupabaseUnavailable: 503 PGRST000: Database connection error. Retrying the connection. "
        '(connection to server at "db.abcdefghijklmnop.supabase.co" (10.0.0.5), port 5432 '
        "failed: Connection refused)",
    )


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_a_machine_that_finds_the_cursor_moved_by_another_leaves_the_table_to_it(
    rest: respx.MockRouter,
) -> None:
    def another_machine_was_faster(request: httpx.Request) -> httpx.Response:
        SyncCursor.objects.filter(table="agendamentos").update(
            updated_at=at("2026-11-21T09:12:45.5+00:00"), last_id=A4
        )
        return recorded("agendamentos_page_1")

    rest.get("/agendamentos").mock(side_effect=another_machine_was_faster)

    result = sync_table(table="agendamentos", page_size=3)

    assert (result.busy, result.rows, result.created) == (True, 0, [])
    assert Appointment.objects.count() == 0
    assert cursor_of("agendamentos") == (at("2026-11-21T09:12:45.5+00:00"), A4, 0, "")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_hooks", "people")
def test_a_machine_that_finds_the_cursor_locked_leaves_the_table_alone(
    rest: respx.MockRouter,
) -> None:
    SyncCursor.objects.create(table="agendamentos")
    locked, release = threading.Event(), threading.Event()

    def other_machine() -> None:
        try:
            with transaction.atomic():
                SyncCursor.objects.select_for_update().get(table="agendamentos")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=other_machine)
    holder.start()
    assert locked.wait(10)
    serve(rest, "agendamentos", "agendamentos_page_1")
    try:
        result = sync_table(table="agendamentos", page_size=3)
    finally:
        release.set()
        holder.join()

    assert (result.busy, result.rows) == (True, 0)
    assert Appointment.objects.count() == 0


@pytest.mark.usefixtures("no_hooks", "people")
def test_rows_younger_than_the_settle_window_are_applied_but_read_again_next_run(
    rest: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(at("2026-11-20T14:00:30+00:00"), tick=False)  # A3 is 30 s old
    serve(rest, "agendamentos", "agendamentos_page_1", "agendamentos_empty")

    result = sync_table(table="agendamentos", page_size=3)

    assert ids(result.created) == [A1, A2, A3]
    assert cursor_of("agendamentos")[:2] == (at("2026-11-20T13:05:11.482913+00:00"), A2)

    a3_only = httpx.Response(200, json=recorded_rows("agendamentos_page_1")[2:])
    route = rest.get("/agendamentos").mock(return_value=a3_only)
    again = sync_table(table="agendamentos", page_size=3)

    assert query(route.calls.last.request)["or"] == after("2026-11-20T13:05:11.482913+00:00", A2)
    assert (again.rows, again.applied) == (1, 0)


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_an_unreadable_row_is_skipped_noted_on_the_cursor_and_passed(
    rest: respx.MockRouter,
) -> None:
    serve(rest, "agendamentos", "agendamentos_unreadable_row")

    result = sync_table(table="agendamentos")

    assert (result.rows, result.skipped, ids(result.created)) == (2, 1, [A2])
    assert cursor_of("agendamentos") == (
        at("2026-11-22T11:00:00.5+00:00"),
        A2,
        2,
        f"agendamentos {A5}: row: Value error, fim must be after inicio",
    )


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_agenda_blocks_are_mirrored_and_a_soft_deletion_flags_them(
    rest: respx.MockRouter,
) -> None:
    serve(rest, "agenda_vendedor", "agenda_vendedor_page", "agenda_vendedor_b1_deleted")

    first = sync_table(table="agenda_vendedor")

    assert (first.rows, first.applied, first.created) == (3, 2, [])
    blocks = list(
        AgendaBlock.objects.order_by("supabase_id").values(
            "supabase_id", "salesperson_id", "kind", "starts_at", "ends_at", "reason", "deleted"
        )
    )
    assert blocks == [
        {
            "supabase_id": UUID(B1),
            "salesperson_id": 41,
            "kind": "blocked",
            "starts_at": at("2026-12-01T15:00:00+00:00"),
            "ends_at": at("2026-12-01T18:00:00+00:00"),
            "reason": "Consulta médica",
            "deleted": False,
        },
        {
            "supabase_id": UUID(B2),
            "salesperson_id": 42,
            "kind": "available",
            "starts_at": at("2026-12-05T12:00:00+00:00"),
            "ends_at": at("2026-12-05T15:00:00+00:00"),
            "reason": "Plantão de sábado",
            "deleted": False,
        },
    ]  # the third was deleted before the hub ever saw it

    second = sync_table(table="agenda_vendedor")

    assert (second.rows, second.applied) == (1, 1)
    assert AgendaBlock.objects.get(supabase_id=B1).deleted is True


@pytest.mark.usefixtures("frozen", "no_hooks")
def test_interactions_are_linked_to_their_appointment_and_lead(
    rest: respx.MockRouter, people: dict[str, Any]
) -> None:
    first_sync(rest)
    serve(rest, "historico_interacoes", "historico_interacoes_page")

    result = sync_table(table="historico_interacoes")

    assert (result.rows, result.applied) == (2, 2)
    reminder, note = (
        Interaction.objects.get(supabase_id=I1),
        Interaction.objects.get(supabase_id=I2),
    )
    assert (reminder.appointment, reminder.lead, reminder.kind, reminder.data) == (
        Appointment.objects.get(supabase_id=A1),
        people["maria"],
        "lembrete",
        {"canal": "whatsapp", "offset_minutos": 1440},
    )
    assert reminder.happened_at == at("2026-11-30T13:00:02+00:00")
    assert (note.appointment, note.lead, note.text) == (
        None,
        people["joao"],
        "Cliente pediu proposta por e-mail",
    )


# --- full sync -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_hooks")
def test_a_full_sync_reads_everything_again_and_cancels_what_supabase_no_longer_has(
    rest: respx.MockRouter, people: dict[str, Any], time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    first_sync(rest)
    local_only = Appointment.objects.create(  # booked while Supabase was not configured
        salesperson=people["ana"],
        starts_at=at("2026-12-04T13:00:00+00:00"),
        ends_at=at("2026-12-04T13:30:00+00:00"),
    )
    time_machine.move_to(NOW, tick=False)
    route = serve(rest, "agendamentos", "agendamentos_changes")  # A3 and A4 are gone

    result = sync_table(table="agendamentos", full=True, page_size=3)

    assert "or" not in query(route.calls.last.request)
    assert (ids(result.cancelled), ids(result.changed)) == ([A1], [A2, A4])
    statuses = dict(Appointment.objects.values_list("supabase_id", "status"))
    assert statuses == {
        UUID(A1): "cancelled",
        UUID(A2): "confirmed",
        UUID(A3): "cancelled",
        UUID(A4): "cancelled",
        None: "booked",
    }
    local_only.refresh_from_db()
    assert local_only.status == "booked"
    assert cursor_of("agendamentos")[:2] == (at("2026-11-22T10:00:01.000002+00:00"), A2)


@pytest.mark.usefixtures("frozen", "no_hooks")
def test_a_full_sync_of_an_empty_table_marks_every_mirrored_block_deleted(
    rest: respx.MockRouter, people: dict[str, Any], time_machine: time_machine.TimeMachineFixture
) -> None:
    serve(rest, "agenda_vendedor", "agenda_vendedor_page")
    sync_table(table="agenda_vendedor")
    serve(rest, "agenda_vendedor", "agendamentos_empty")

    result = sync_table(table="agenda_vendedor", full=True)

    assert (result.rows, result.applied) == (0, 2)
    assert list(AgendaBlock.objects.values_list("deleted", flat=True)) == [True, True]


# --- the database webhook ------------------------------------------------------------------------


def post_webhook(client: Client, name: str, capture: Any) -> InboundEvent:
    with capture(execute=True):
        response = client.post(
            WEBHOOK_URL, data=webhook_body(name), content_type="application/json"
        )
    assert response.status_code == 200
    return InboundEvent.objects.order_by("-pk").first()  # type: ignore[return-value]


@pytest.mark.usefixtures("frozen", "people")
def test_an_insert_webhook_mirrors_the_appointment_at_once_without_touching_the_cursor(
    client: Client, django_capture_on_commit_callbacks: Any, no_hooks: list[SyncResult]
) -> None:
    SyncCursor.objects.create(
        table="agendamentos", updated_at=at("2026-11-24T08:00:00+00:00"), last_id=A4
    )

    event = post_webhook(client, "webhook_agendamentos_insert", django_capture_on_commit_callbacks)

    assert (event.event_type, event.status, event.result, event.lead_id) == (
        "supabase.agendamentos.insert",
        EventStatus.PROCESSED,
        f"agendamentos {A1}: created",
        3101,
    )
    appointment = Appointment.objects.get(supabase_id=A1)
    assert (appointment.salesperson_id, appointment.status) == (41, "booked")
    assert [ids(batch.created) for batch in no_hooks] == [[A1]]
    assert cursor_of("agendamentos")[:2] == (at("2026-11-24T08:00:00+00:00"), A4)


@pytest.mark.usefixtures("frozen", "people", "no_hooks")
def test_update_and_delete_webhooks_cancel_and_a_late_old_version_cannot_revive_it(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    post_webhook(client, "webhook_agendamentos_insert", capture)

    cancelled = post_webhook(client, "webhook_agendamentos_update_cancelled", capture)
    assert cancelled.result == f"agendamentos {A1}: cancelled"
    Appointment.objects.filter(supabase_id=A1).update(status="booked")  # as if undone meanwhile

    deleted = post_webhook(client, "webhook_agendamentos_delete", capture)

    assert (deleted.event_type, deleted.result) == (
        "supabase.agendamentos.delete",
        f"agendamentos {A1}: cancelled",
    )
    appointment = Appointment.objects.get(supabase_id=A1)
    assert (appointment.status, appointment.supabase_updated_at) == ("cancelled", NOW)
    late = AppointmentRow.model_validate(recorded_rows("agendamentos_changes")[0])
    with transaction.atomic():
        assert appointment_apply(row=late.model_copy(update={"status": "booked"}))[0] == "stale"
    assert Appointment.objects.get(supabase_id=A1).status == "cancelled"


@pytest.mark.usefixtures("frozen", "people", "no_hooks")
def test_block_and_interaction_webhooks_are_applied(
    client: Client, rest: respx.MockRouter, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    first_sync(rest)
    serve(rest, "historico_interacoes", "historico_interacoes_page")
    sync_table(table="historico_interacoes")

    block = post_webhook(client, "webhook_agenda_vendedor_insert", capture)
    gone = post_webhook(client, "webhook_historico_interacoes_delete", capture)

    assert (block.result, gone.result, gone.lead_id) == (
        f"agenda_vendedor {B1}: created",
        f"historico_interacoes {I1}: deleted",
        3101,
    )
    assert AgendaBlock.objects.get(supabase_id=B1).reason == "Consulta médica"
    assert list(Interaction.objects.values_list("supabase_id", flat=True)) == [UUID(I2)]


@pytest.mark.usefixtures("frozen")
def test_a_webhook_whose_record_cannot_be_read_is_dead_at_once(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            WEBHOOK_URL,
            data=(
                b'{"type": "UPDATE", "table": "agendamentos", "schema": "public",'
                b' "record": {"id": 7, "status": "maybe"}, "old_record": null}'
            ),
            content_type="application/json",
        )

    event = InboundEvent.objects.get()
    assert event.status == EventStatus.DEAD
    assert event.last_error.startswith("invalid agendamentos row: id: UUID input should be")
    assert "status: Input should be 'booked', 'confirmed', 'cancelled', 'done' or 'no_show'" in (
        event.last_error
    )
    assert Appointment.objects.count() == 0


@pytest.mark.usefixtures("frozen")
def test_a_webhook_of_a_table_in_another_schema_is_ignored(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            WEBHOOK_URL,
            data=webhook_body("webhook_agendamentos_insert").replace(
                b'"schema": "public"', b'"schema": "archive"'
            ),
            content_type="application/json",
        )

    event = InboundEvent.objects.get()
    assert (event.status, event.result) == (EventStatus.IGNORED, "not the agenda: schema 'archive'")
    assert Appointment.objects.count() == 0


# --- the command and the periodic job ------------------------------------------------------------


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_sync_supabase_syncs_every_table_and_prints_what_it_did(rest: respx.MockRouter) -> None:
    serve(rest, "agendamentos", "agendamentos_page_2")
    serve(rest, "agenda_vendedor", "agenda_vendedor_page")
    serve(rest, "historico_interacoes", "agendamentos_empty")
    out, err = StringIO(), StringIO()

    call_command("sync_supabase", stdout=out, stderr=err)

    assert out.getvalue().splitlines() == [
        "agendamentos: 1 row(s) read, 1 applied, appointments 1 new, 0 changed, 0 cancelled",
        "agenda_vendedor: 3 row(s) read, 2 applied, appointments 0 new, 0 changed, 0 cancelled",
        "historico_interacoes: 0 row(s) read, 0 applied, appointments 0 new, 0 changed, "
        "0 cancelled",
    ]
    assert err.getvalue().split("\n")[:2] == [  # the progress bar, redrawn in place
        "\ragendamentos: 0row [00:00, ?row/s]\ragendamentos: 1row [00:00, ?row/s]",
        "\ragenda_vendedor: 0row [00:00, ?row/s]\ragenda_vendedor: 3row [00:00, ?row/s]",
    ]


@pytest.mark.usefixtures("no_hooks", "people")
def test_sync_supabase_full_of_one_table_resets_its_cursor(
    rest: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    first_sync(rest)
    time_machine.move_to(NOW, tick=False)
    route = serve(rest, "agendamentos", "agendamentos_changes")
    out = StringIO()

    call_command(
        "sync_supabase", "--full", "--table", "agendamentos", stdout=out, stderr=StringIO()
    )

    assert "or" not in query(route.calls.last.request)
    assert out.getvalue() == (
        "agendamentos: 2 row(s) read, 3 applied, appointments 0 new, 2 changed, 1 cancelled\n"
    )


def test_sync_supabase_refuses_to_run_without_configuration(settings: Any) -> None:
    settings.SUPABASE_URL = ""

    with pytest.raises(CommandError, match="Supabase is not configured"):
        call_command("sync_supabase", stdout=StringIO(), stderr=StringIO())


@pytest.mark.usefixtures("frozen", "no_hooks")
def test_sync_supabase_reports_a_table_it_could_not_sync_and_fails(
    rest: respx.MockRouter,
) -> None:
    serve(rest, "agendamentos", "error_bad_gateway")
    serve(rest, "agenda_vendedor", "agendamentos_empty")
    serve(rest, "historico_interacoes", "agendamentos_empty")
    err = StringIO()

    with pytest.raises(CommandError, match="some tables could not be synced"):
        call_command("sync_supabase", stdout=StringIO(), stderr=err)

    assert "agendamentos: 502 502: Bad Gateway" in err.getvalue()
    assert SyncCursor.objects.get(table="agenda_vendedor").last_run_at == NOW


@pytest.mark.usefixtures("frozen", "no_hooks", "people")
def test_the_periodic_job_syncs_every_table_and_counts_the_mirror_rows_it_changed(
    rest: respx.MockRouter,
) -> None:
    order: list[str] = []
    rest.route(method="GET").mock(
        side_effect=lambda request: (
            order.append(request.url.path.rsplit("/", 1)[-1]),
            recorded(
                {
                    "agendamentos": "agendamentos_page_2",
                    "agenda_vendedor": "agenda_vendedor_page",
                    "historico_interacoes": "agendamentos_empty",
                }[order[-1]]
            ),
        )[1]
    )

    assert supabase_sync_all() == 3
    assert order == ["agendamentos", "agenda_vendedor", "historico_interacoes"]


@pytest.mark.usefixtures("frozen", "no_hooks")
def test_the_periodic_job_stops_at_the_first_table_supabase_cannot_serve(
    rest: respx.MockRouter,
) -> None:
    down = serve(rest, "agendamentos", "error_database_unreachable")
    others = rest.route(method="GET").mock(return_value=recorded("agendamentos_empty"))

    assert supabase_sync_all() == 0
    assert (down.call_count, others.call_count) == (1, 0)


def test_the_periodic_job_does_nothing_without_configuration(settings: Any) -> None:
    settings.SUPABASE_URL = ""
    with respx.mock(assert_all_mocked=True) as router:
        assert supabase_sync_all() == 0
    assert router.calls.call_count == 0
    assert not SyncCursor.objects.exists()
