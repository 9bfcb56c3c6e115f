"""scheduling/supabase.py: the PostgREST requests it sends and how it reads the answers.

Supabase is replaced at the HTTP boundary (respx) by answers recorded in tests/fixtures/supabase.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from scheduling import supabase
from scheduling.supabase import (
    SupabaseConflict,
    SupabaseError,
    SupabaseNotConfigured,
    SupabaseNotFound,
    SupabaseUnavailable,
)
from tests.conftest import OWN_FIXTURES

SUPABASE_PROJECT = "https://abcdefghijklmnop.supabase.co"
REST = f"{SUPABASE_PROJECT}/rest/v1"
SERVICE_ROLE_KEY = "service-role-test-key"
A1 = "0b6f3c1e-8f2a-4d59-9a67-1c2d3e4f5a01"
A5 = "0b6f3c1e-8f2a-4d59-9a67-1c2d3e4f5a05"


def recorded(name: str) -> httpx.Response:
    """A recorded PostgREST answer (tests/fixtures/supabase/<name>.json)."""
    doc = json.loads((OWN_FIXTURES / "supabase" / f"{name}.json").read_text(encoding="utf-8"))
    body = doc["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(doc["status"], headers=doc["headers"], content=content)


def recorded_rows(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = recorded(name).json()
    return rows


def webhook_body(name: str) -> bytes:
    return (OWN_FIXTURES / "supabase" / f"{name}.json").read_bytes()


def query(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))


@pytest.fixture
def supabase_settings(settings: Any) -> None:
    settings.SUPABASE_URL = SUPABASE_PROJECT
    settings.SUPABASE_SERVICE_ROLE_KEY = SERVICE_ROLE_KEY
    settings.SUPABASE_TIMEOUT_SECONDS = 3.5


@pytest.fixture
def rest(supabase_settings: None) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=REST, assert_all_called=False) as router:
        yield router


# --- configuration -------------------------------------------------------------------------------


def test_supabase_counts_as_configured_only_with_both_the_url_and_the_service_role_key(
    settings: Any,
) -> None:
    settings.SUPABASE_URL, settings.SUPABASE_SERVICE_ROLE_KEY = SUPABASE_PROJECT, ""
    assert supabase.supabase_configured() is False
    settings.SUPABASE_URL, settings.SUPABASE_SERVICE_ROLE_KEY = "", SERVICE_ROLE_KEY
    assert supabase.supabase_configured() is False
    settings.SUPABASE_URL = SUPABASE_PROJECT
    assert supabase.supabase_configured() is True


def test_a_call_without_configuration_raises_not_configured_and_sends_nothing(
    settings: Any,
) -> None:
    settings.SUPABASE_URL = ""
    with (
        respx.mock(assert_all_mocked=True) as router,
        pytest.raises(SupabaseNotConfigured) as caught,
    ):
        supabase.appointment_get(id=A1)

    assert isinstance(caught.value, SupabaseUnavailable)
    assert str(caught.value) == (
        "Supabase is not configured (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY)"
    )
    assert router.calls.call_count == 0


def test_the_http_client_has_the_configured_timeout_and_sends_the_service_role_key(
    rest: respx.MockRouter,
) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded("agendamentos_empty"))

    supabase.appointment_get(id=A1)

    request = route.calls.last.request
    assert request.headers["apikey"] == SERVICE_ROLE_KEY
    assert request.headers["Authorization"] == f"Bearer {SERVICE_ROLE_KEY}"
    assert request.headers["Accept-Profile"] == "public"
    assert request.extensions["timeout"] == httpx.Timeout(3.5).as_dict()


# --- reads ---------------------------------------------------------------------------------------


def test_the_first_page_of_changes_asks_for_the_oldest_rows_in_keyset_order(
    rest: respx.MockRouter,
) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded("agendamentos_page_1"))

    rows = supabase.rows_changed_since(table="agendamentos", updated_at=None, last_id="", limit=500)

    assert [row["id"] for row in rows] == [
        A1,
        "0b6f3c1e-8f2a-4d59-9a67-1c2d3e4f5a02",
        "0b6f3c1e-8f2a-4d59-9a67-1c2d3e4f5a03",
    ]
    assert query(route.calls.last.request) == {
        "select": "*",
        "order": "updated_at.asc,id.asc",
        "limit": "500",
    }


def test_the_next_page_starts_after_the_cursor_row_with_an_or_filter(
    rest: respx.MockRouter,
) -> None:
    route = rest.get("/agenda_vendedor").mock(return_value=recorded("agendamentos_empty"))
    at = datetime(2026, 11, 20, 10, 5, 11, 482913, tzinfo=UTC)

    rows = supabase.rows_changed_since(
        table="agenda_vendedor", updated_at=at, last_id=A1.upper(), limit=2
    )

    assert rows == []
    stamp = '"2026-11-20T10:05:11.482913+00:00"'
    assert query(route.calls.last.request) == {
        "select": "*",
        "or": f"(updated_at.gt.{stamp},and(updated_at.eq.{stamp},id.gt.{A1}))",
        "order": "updated_at.asc,id.asc",
        "limit": "2",
    }
    assert "%2B00%3A00" in str(route.calls.last.request.url)  # '+' is not sent as a space


def test_a_cursor_without_an_id_reads_its_instant_again(rest: respx.MockRouter) -> None:
    route = rest.get("/historico_interacoes").mock(return_value=recorded("agendamentos_empty"))

    supabase.rows_changed_since(
        table="historico_interacoes",
        updated_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        last_id="",
        limit=10,
    )

    assert query(route.calls.last.request)["updated_at"] == "gte.2026-11-20T10:00:00+00:00"


def test_only_the_agenda_tables_can_be_read() -> None:
    with pytest.raises(ValueError, match=r"not an agenda table: 'auth\.users'"):
        supabase.rows_changed_since(table="auth.users", updated_at=None, last_id="", limit=1)


def test_appointment_get_asks_for_one_id_and_is_none_when_there_is_no_such_row(
    rest: respx.MockRouter,
) -> None:
    route = rest.get("/agendamentos").mock(
        side_effect=[recorded("agendamentos_inserted"), recorded("agendamentos_empty")]
    )

    found = supabase.appointment_get(id=A5)
    missing = supabase.appointment_get(id=A1)

    assert found is not None
    assert found["id"] == A5
    assert missing is None
    assert query(route.calls[0].request) == {"select": "*", "id": f"eq.{A5}", "limit": "1"}


def test_appointment_get_refuses_an_id_that_is_not_a_uuid_without_asking() -> None:
    with pytest.raises(SupabaseError, match="not a row id"):
        supabase.appointment_get(id="7")


def test_appointment_find_looks_the_booking_key_up(rest: respx.MockRouter) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded("agendamentos_inserted"))

    found = supabase.appointment_find(idempotency_key="booking:lead-3101:5")

    assert found is not None
    assert found["idempotency_key"] == "booking:lead-3101:5"
    assert query(route.calls.last.request)["idempotency_key"] == "eq.booking:lead-3101:5"


def test_appointments_between_asks_for_active_undeleted_ones_that_overlap_the_window(
    rest: respx.MockRouter,
) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded("agendamentos_page_2"))

    rows = supabase.appointments_between(
        vendedor_id=41,
        start=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
        end=datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
    )

    assert len(rows) == 1
    assert query(route.calls.last.request) == {
        "select": "*",
        "vendedor_id": "eq.41",
        "inicio": "lt.2026-12-01T21:00:00+00:00",
        "fim": "gt.2026-12-01T12:00:00+00:00",
        "deleted_at": "is.null",
        "status": "in.(booked,confirmed)",
        "order": "inicio.asc,id.asc",
    }


def test_appointments_between_can_include_every_status(rest: respx.MockRouter) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded("agendamentos_empty"))

    supabase.appointments_between(
        vendedor_id=41,
        start=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
        end=datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
        active_only=False,
    )

    assert "status" not in query(route.calls.last.request)


# --- writes --------------------------------------------------------------------------------------


def test_appointment_insert_posts_the_row_and_returns_it_as_stored(
    rest: respx.MockRouter,
) -> None:
    route = rest.post("/agendamentos").mock(return_value=recorded("agendamentos_inserted"))
    row = {
        "vendedor_id": 41,
        "lead_id": 3101,
        "inicio": datetime(2026, 12, 3, 13, 0, tzinfo=UTC),
        "fim": "2026-12-03T13:30:00Z",
        "status": "booked",
        "idempotency_key": "booking:lead-3101:5",
    }

    stored = supabase.appointment_insert(row=row)

    assert stored["id"] == A5
    assert stored["updated_at"] == "2026-11-25T12:00:00.654321+00:00"
    request = route.calls.last.request
    assert request.headers["Prefer"] == "return=representation"
    assert json.loads(request.content) == {
        **row,
        "inicio": "2026-12-03T13:00:00+00:00",
    }


def test_an_appointment_overlapping_an_active_one_is_a_conflict_that_says_so(
    rest: respx.MockRouter,
) -> None:
    rest.post("/agendamentos").mock(return_value=recorded("error_overlap"))

    with pytest.raises(SupabaseConflict) as caught:
        supabase.appointment_insert(row={"vendedor_id": 41})

    conflict = caught.value
    assert (conflict.is_overlap, conflict.is_duplicate) == (True, False)
    assert (conflict.status, conflict.code) == (400, "23P01")
    assert conflict.message == (
        'conflicting key value violates exclusion constraint "agendamentos_sem_sobreposicao"'
    )
    assert conflict.details.startswith("Key (vendedor_id, tstzrange(inicio, fim, '[)'::text))")


def test_a_booking_key_used_before_is_a_duplicate_conflict(rest: respx.MockRouter) -> None:
    rest.post("/agendamentos").mock(return_value=recorded("error_duplicate_key"))

    with pytest.raises(SupabaseConflict) as caught:
        supabase.appointment_insert(row={"idempotency_key": "booking:lead-3101:5"})

    assert (caught.value.is_overlap, caught.value.is_duplicate) == (False, True)
    assert str(caught.value) == (
        "409 23505: duplicate key value violates unique constraint "
        '"agendamentos_idempotency_key_key" '
        "(Key (idempotency_key)=(booking:lead-3101:5) already exists.)"
    )


def test_appointment_update_patches_the_row_by_id_and_returns_it(rest: respx.MockRouter) -> None:
    route = rest.patch("/agendamentos").mock(return_value=recorded("agendamentos_updated"))

    stored = supabase.appointment_update(id=A5, values={"status": "confirmed"})

    assert stored["status"] == "confirmed"
    request = route.calls.last.request
    assert query(request) == {"id": f"eq.{A5}"}
    assert json.loads(request.content) == {"status": "confirmed"}
    assert request.headers["Prefer"] == "return=representation"


def test_updating_an_appointment_supabase_does_not_have_is_not_found(
    rest: respx.MockRouter,
) -> None:
    rest.patch("/agendamentos").mock(return_value=recorded("agendamentos_empty"))

    with pytest.raises(SupabaseNotFound, match=f"no appointment {A5} in Supabase"):
        supabase.appointment_update(id=A5, values={"status": "done"})


def test_interaction_insert_posts_to_the_history_table(rest: respx.MockRouter) -> None:
    answer = recorded_rows("historico_interacoes_page")[:1]
    route = rest.post("/historico_interacoes").mock(
        return_value=httpx.Response(201, json=answer, headers={"Content-Range": "*/*"})
    )

    stored = supabase.interaction_insert(row={"tipo": "lembrete", "dados": {"canal": "whatsapp"}})

    assert stored == answer[0]
    assert json.loads(route.calls.last.request.content) == {
        "tipo": "lembrete",
        "dados": {"canal": "whatsapp"},
    }


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ("error_database_unreachable", 503, "PGRST000"),
        ("error_statement_timeout", 500, "57014"),
        ("error_bad_gateway", 502, "502"),
    ],
)
def test_server_side_failures_are_unavailable(
    rest: respx.MockRouter, answer: str, status: int, code: str
) -> None:
    route = rest.get("/agendamentos").mock(return_value=recorded(answer))

    with pytest.raises(SupabaseUnavailable) as caught:
        supabase.appointment_get(id=A1)

    assert (caught.value.status, caught.value.code) == (status, code)
    assert route.calls.call_count == 1  # not retried here: the caller decides


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_network_failures_and_timeouts_are_unavailable(
    rest: respx.MockRouter, failure: Exception
) -> None:
    rest.get("/agendamentos").mock(side_effect=failure)

    with pytest.raises(SupabaseUnavailable) as caught:
        supabase.rows_changed_since(table="agendamentos", updated_at=None, last_id="", limit=5)

    assert str(caught.value) == f"agendamentos changes: {type(failure).__name__}: {failure}"


@pytest.mark.parametrize(
    ("answer", "message", "status", "code"),
    [
        (
            "error_invalid_input",
            'invalid input syntax for type timestamp with time zone: "amanhã"',
            400,
            "22007",
        ),
        ("error_invalid_api_key", "Invalid API key", 401, ""),
    ],
)
def test_other_refusals_are_errors_that_keep_supabases_message(
    rest: respx.MockRouter, answer: str, message: str, status: int, code: str
) -> None:
    rest.post("/agendamentos").mock(return_value=recorded(answer))

    with pytest.raises(SupabaseError) as caught:
        supabase.appointment_insert(row={"inicio": "amanhã"})

    assert type(caught.value) is SupabaseError
    assert (caught.value.message, caught.value.status, caught.value.code) == (
        message,
        status,
        code,
    )


def test_a_success_answer_that_is_not_rows_is_an_error(rest: respx.MockRouter) -> None:
    rest.get("/agendamentos").mock(
        return_value=httpx.Response(200, text="<html>captive portal</html>")
    )

    with pytest.raises(SupabaseError, match="expected a JSON array of rows"):
        supabase.appointment_get(id=A1)
