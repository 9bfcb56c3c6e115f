"""The scheduling API for n8n: API keys, slots, booking, rescheduling, cancelling, done /
no-show, the OpenAPI schema, and bad input (always a 4xx naming the problem, never a 500)."""

import hashlib
import io
import json
import logging
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kommo_hub.models import ApiKey, OutboundAction
from scheduling.models import Appointment, AppointmentStatus, Reminder
from tests.factories import LeadFactory
from tests.routing.factories import TimeOffFactory
from tests.scheduling.booking_support import (
    APPOINTMENTS_URL,
    MONDAY,
    THURSDAY,
    Team,
    assign,
    at,
)
from tests.scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db

SLOTS = "/api/scheduling/slots/"
APPOINTMENTS = "/api/scheduling/appointments/"
THURSDAY_TIMES = [
    "09:00", "09:30", "10:00", "10:30", "11:00", "11:30",
    "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00", "17:30",
]  # fmt: skip


@pytest.fixture
def key() -> str:
    _api_key, plain = ApiKey.generate(name="n8n")
    return plain


@pytest.fixture
def api(key: str) -> Client:
    return Client(headers={"authorization": f"Api-Key {key}"})


def post(api: Client, path: str, body: Any) -> Any:
    return api.post(path, data=json.dumps(body), content_type="application/json")


def slot(hour: int, minute: int, person_id: int, length: int = 30) -> dict[str, Any]:
    start = at(THURSDAY, hour, minute)
    return {
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=length)).isoformat(),
        "salesperson_id": person_id,
    }


def person_block(team: Team, name: str = "ana") -> dict[str, Any]:
    person = getattr(team, name)
    return {"id": person.pk, "name": person.name, "kommo_user_id": person.kommo_user_id}


def book_body(team: Team, **changes: Any) -> dict[str, Any]:
    return {
        "lead": team.lead.pk,
        "start": "2026-11-26T15:00:00-03:00",
        "idempotency_key": "n8n:exec-8812:book",
    } | changes


# --- API keys ----------------------------------------------------------------------------------


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash() -> None:
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", "n8n", stdout=out, stderr=err)

    key = out.getvalue().strip()
    stored = ApiKey.objects.get()
    assert stored.name == "n8n"
    assert stored.active is True
    assert key.startswith(f"{stored.prefix}.")
    assert len(key) > 40
    assert stored.hashed_key == hashlib.sha256(key.encode()).hexdigest()
    row = ApiKey.objects.values().get()
    assert all(key not in str(value) for value in row.values())
    assert err.getvalue() == (
        f"API key #{stored.pk} 'n8n' created. Copy it now: it is not shown again.\n"
    )


def test_create_api_key_needs_a_name() -> None:
    with pytest.raises(CommandError, match="give the key a name"):
        call_command("create_api_key", "  ", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(
    "authorization",
    [None, "Api-Key", "Api-Key nope", "Api-Key a.b c", "Bearer x", "Api-Key \u00e9"],
    ids=["missing", "empty", "no-prefix", "two-words", "other-scheme", "not-ascii"],
)
def test_a_request_without_a_valid_key_is_401(authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}

    response = Client(headers=headers).get(SLOTS, {"salesperson": 1})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Api-Key"


def test_a_wrong_secret_or_a_revoked_key_is_401(team: Team, key: str) -> None:
    prefix = key.split(".")[0]
    wrong = Client(headers={"authorization": f"Api-Key {prefix}.not-the-secret"})
    assert wrong.get(SLOTS, {"salesperson": team.ana.pk}).json() == {"detail": "Invalid API key."}

    ApiKey.objects.update(active=False)
    revoked = Client(headers={"authorization": f"Api-Key {key}"})
    assert revoked.get(SLOTS, {"salesperson": team.ana.pk}).status_code == 401


def test_an_admin_session_is_not_an_api_key(team: Team, admin_client: Client) -> None:
    assert admin_client.get(SLOTS, {"salesperson": team.ana.pk}).status_code == 401


def test_the_key_is_never_logged(
    team: Team, key: str, api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prefix, secret = key.split(".")

    api.get(SLOTS, {"salesperson": team.ana.pk})
    post(api, APPOINTMENTS, book_body(team))
    Client(headers={"authorization": f"Api-Key {prefix}.wrong"}).get(SLOTS)

    assert secret not in caplog.text
    assert ApiKey.objects.get().last_used_at is not None


# --- Slots -------------------------------------------------------------------------------------


def test_slots_of_a_salesperson(team: Team, api: Client) -> None:
    response = api.get(SLOTS, {"salesperson": team.ana.pk, "from": "2026-11-26", "days": 1})

    assert response.status_code == 200
    assert response.json() == {
        "timezone": "America/Sao_Paulo",
        "duration_minutes": 30,
        "salesperson": person_block(team),
        "fallback": False,
        "salespeople": [person_block(team)],
        "slots": [slot(int(t[:2]), int(t[3:]), team.ana.pk) for t in THURSDAY_TIMES],
    }


def test_slots_for_a_lead_are_its_salesperson_s_with_the_asked_duration(
    team: Team, api: Client
) -> None:
    AppointmentFactory(salesperson=team.ana, starts_at=at(THURSDAY, 9), ends_at=at(THURSDAY, 12))

    response = api.get(
        SLOTS,
        {"lead": team.lead.pk, "from": "2026-11-26T13:00:00-03:00", "days": 1, "duration": 60},
    )

    body = response.json()
    assert body["duration_minutes"] == 60
    assert body["salesperson"] == person_block(team)
    assert body["slots"][:2] == [slot(13, 0, team.ana.pk, 60), slot(13, 30, team.ana.pk, 60)]
    thursday = [s for s in body["slots"] if s["start"].startswith("2026-11-26")]
    assert thursday[-1] == slot(17, 0, team.ana.pk, 60)
    assert body["slots"][-1]["start"] == "2026-11-27T11:00:00-03:00"  # from + 1 day


def test_slots_for_a_lead_whose_salesperson_is_away_come_from_the_area(
    team: Team, api: Client
) -> None:
    TimeOffFactory(salesperson=team.ana, first_day=MONDAY, last_day=MONDAY + timedelta(days=30))

    body = api.get(SLOTS, {"lead": team.lead.pk, "from": "2026-11-26", "days": 1}).json()

    assert body["salesperson"] == person_block(team)
    assert body["fallback"] is True
    assert body["salespeople"] == [person_block(team, "bruno")]
    assert body["slots"][0] == slot(9, 0, team.bruno.pk)
    assert {s["salesperson_id"] for s in body["slots"]} == {team.bruno.pk}


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({}, {"salesperson": ["Give either salesperson or lead (exactly one)."]}),
        (
            {"salesperson": "1", "lead": "1"},
            {"salesperson": ["Give either salesperson or lead (exactly one)."]},
        ),
        ({"lead": "abc"}, {"lead": ["A valid integer is required."]}),
        ({"salesperson": "0"}, {"salesperson": ["Ensure this value is greater than or equal to 1."]}),  # noqa: E501
        ({"salesperson": "9" * 30}, {"salesperson": ["Ensure this value is less than or equal to 9223372036854775807."]}),  # noqa: E501
        ({"salesperson": "999999"}, {"salesperson": ["Unknown salesperson."]}),
        ({"lead": "999999"}, {"lead": ["Unknown lead."]}),
        (
            {"salesperson": "1", "from": "amanhã"},
            {"from": ["Give an ISO-8601 date-time or date, e.g. 2026-11-26T15:00:00-03:00 or 2026-11-26."]},  # noqa: E501
        ),
        ({"salesperson": "1", "from": "2026-13-45"}, {"from": ["Give an ISO-8601 date-time or date, e.g. 2026-11-26T15:00:00-03:00 or 2026-11-26."]}),  # noqa: E501
        ({"salesperson": "1", "from": "9999-12-31"}, {"from": ["Too far from today."]}),
        ({"salesperson": "1", "days": "0"}, {"days": ["Ensure this value is greater than or equal to 1."]}),  # noqa: E501
        ({"salesperson": "1", "days": "61"}, {"days": ["Ensure this value is less than or equal to 60."]}),  # noqa: E501
        ({"salesperson": "1", "duration": "4"}, {"duration": ["Ensure this value is greater than or equal to 5."]}),  # noqa: E501
    ],
    ids=lambda value: json.dumps(value)[:40] if isinstance(value, dict) else "",
)  # fmt: skip
def test_bad_slot_queries_are_400_naming_the_field(
    team: Team, api: Client, query: dict[str, str], errors: dict[str, list[str]]
) -> None:
    if query.get("salesperson") == "1":
        query = query | {"salesperson": str(team.ana.pk)}

    response = api.get(SLOTS, query)

    assert response.status_code == 400
    assert response.json() == errors


def test_a_lead_nobody_serves_yet_has_no_slots(team: Team, api: Client) -> None:
    waiting = LeadFactory()

    response = api.get(SLOTS, {"lead": waiting.pk})

    assert response.status_code == 400
    assert response.json() == {"lead": ["The lead has no salesperson or area yet."]}


# --- Booking -----------------------------------------------------------------------------------


def appointment_json(team: Team, appointment: Appointment, **changes: Any) -> dict[str, Any]:
    return {
        "id": appointment.pk,
        "supabase_id": None,
        "status": "booked",
        "lead": team.lead.pk,
        "salesperson": person_block(team),
        "start": "2026-11-26T15:00:00-03:00",
        "end": "2026-11-26T15:30:00-03:00",
        "duration_minutes": 30,
        "title": "Reunião com Maria Oliveira",
        "notes": "",
        "source": "api",
        "idempotency_key": "n8n:exec-8812:book",
        "created_at": "2026-11-23T08:00:00-03:00",
        "updated_at": "2026-11-23T08:00:00-03:00",
    } | changes


def test_booking_answers_201_and_a_repeat_200_with_the_same_appointment(
    team: Team, api: Client
) -> None:
    first = post(api, APPOINTMENTS, book_body(team))
    again = post(api, APPOINTMENTS, book_body(team))

    appointment = Appointment.objects.get()
    assert first.status_code == 201
    assert first.json() == appointment_json(team, appointment)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert sorted(OutboundAction.objects.values_list("action", flat=True)) == [
        "note_add",
        "task_add",
    ]


def test_booking_a_taken_slot_is_409_with_the_nearest_alternatives(team: Team, api: Client) -> None:
    post(api, APPOINTMENTS, book_body(team))

    response = post(api, APPOINTMENTS, book_body(team, idempotency_key="n8n:other"))

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This slot is not available.",
        "code": "slot_taken",
        "alternatives": [
            slot(14, 0, team.ana.pk),
            slot(14, 30, team.ana.pk),
            slot(15, 30, team.ana.pk),
        ],
    }
    assert Appointment.objects.count() == 1


def test_booking_with_another_salesperson_and_duration(team: Team, api: Client) -> None:
    response = post(
        api,
        APPOINTMENTS,
        book_body(team, salesperson=team.bruno.pk, duration=60, title="Demo", notes="Plano anual"),
    )

    assert response.status_code == 201
    body = response.json()
    assert body["salesperson"] == person_block(team, "bruno")
    assert (body["end"], body["duration_minutes"]) == ("2026-11-26T16:00:00-03:00", 60)
    assert (body["title"], body["notes"]) == ("Demo", "Plano anual")


def test_a_start_in_another_offset_means_the_same_moment(team: Team, api: Client) -> None:
    response = post(api, APPOINTMENTS, book_body(team, start="2026-11-26T18:00:00Z"))

    assert response.status_code == 201
    assert response.json()["start"] == "2026-11-26T15:00:00-03:00"


def test_a_lead_without_a_salesperson_is_400_on_the_salesperson_field(
    team: Team, api: Client
) -> None:
    waiting = LeadFactory()
    assign(waiting, None, team.area)

    response = post(api, APPOINTMENTS, book_body(team, lead=waiting.pk))

    assert response.status_code == 400
    assert response.json() == {
        "salesperson": ["The lead has no salesperson yet: say which salesperson to book."]
    }


def test_supabase_unavailable_is_503_and_nothing_is_written(
    team: Team, api: Client, supabase: respx.MockRouter
) -> None:
    supabase.post(APPOINTMENTS_URL).mock(side_effect=httpx.ConnectError("refused"))

    response = post(api, APPOINTMENTS, book_body(team))

    assert response.status_code == 503
    assert response.json() == {
        "detail": "The agenda (Supabase) is unavailable; nothing was booked. Try again shortly.",
        "code": "agenda_unavailable",
    }
    assert Appointment.objects.count() == 0
    assert OutboundAction.objects.count() == 0


# --- Reschedule, cancel, status ----------------------------------------------------------------


def test_rescheduling_through_the_api(team: Team, api: Client) -> None:
    appointment_id = post(api, APPOINTMENTS, book_body(team)).json()["id"]
    post(api, APPOINTMENTS, book_body(team, start="2026-11-26T17:00:00-03:00", idempotency_key="b"))

    moved = post(
        api, f"{APPOINTMENTS}{appointment_id}/reschedule/", {"start": "2026-11-26T16:00:00-03:00"}
    )
    taken = post(
        api, f"{APPOINTMENTS}{appointment_id}/reschedule/", {"start": "2026-11-26T17:00:00-03:00"}
    )

    assert moved.status_code == 200
    assert (moved.json()["start"], moved.json()["end"]) == (
        "2026-11-26T16:00:00-03:00",
        "2026-11-26T16:30:00-03:00",
    )
    assert taken.status_code == 409
    assert taken.json()["alternatives"] == [
        slot(16, 0, team.ana.pk),
        slot(16, 30, team.ana.pk),
        slot(17, 30, team.ana.pk),
    ]
    notes = OutboundAction.objects.filter(action="note_add").order_by("pk")
    assert [n.payload["text"] for n in notes][-1] == (
        "Reunião com Ana Souza remarcada de 26/11 às 15:00 para 26/11 às 16:00 (30 min)"
    )


def test_cancelling_through_the_api(team: Team, api: Client) -> None:
    appointment_id = post(api, APPOINTMENTS, book_body(team)).json()["id"]

    response = post(api, f"{APPOINTMENTS}{appointment_id}/cancel/", {"reason": "viajou"})
    again = post(api, f"{APPOINTMENTS}{appointment_id}/cancel/", {})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert again.status_code == 200
    assert OutboundAction.objects.filter(action="note_add").order_by("pk").last().payload[
        "text"
    ] == ("Reunião com Ana Souza de 26/11 às 15:00 cancelada. Motivo: viajou")


def test_the_reminders_follow_booking_rescheduling_and_cancelling(
    team: Team, api: Client, settings: Any
) -> None:
    settings.REMINDER_OFFSETS_MINUTES = [1440, 60]
    appointment_id = post(api, APPOINTMENTS, book_body(team)).json()["id"]

    def reminders() -> list[tuple[int, str, str]]:
        return [
            (
                r.offset_minutes,
                timezone.localtime(r.appointment_starts_at).strftime("%H:%M"),
                r.status,
            )
            for r in Reminder.objects.filter(appointment_id=appointment_id).order_by("pk")
        ]

    assert reminders() == [(1440, "15:00", "scheduled"), (60, "15:00", "scheduled")]
    post(api, f"{APPOINTMENTS}{appointment_id}/reschedule/", {"start": "2026-11-26T16:00:00-03:00"})
    assert reminders() == [
        (1440, "15:00", "cancelled"),
        (60, "15:00", "cancelled"),
        (1440, "16:00", "scheduled"),
        (60, "16:00", "scheduled"),
    ]
    post(api, f"{APPOINTMENTS}{appointment_id}/cancel/", {})
    assert {status for _offset, _start, status in reminders()} == {"cancelled"}


def test_done_and_no_show_through_the_api(team: Team, api: Client) -> None:
    appointment_id = post(api, APPOINTMENTS, book_body(team)).json()["id"]
    path = f"{APPOINTMENTS}{appointment_id}/status/"

    early = post(api, path, {"status": "no_show"})
    with time_machine.travel(at(THURSDAY, 15, 40), tick=False):
        no_show = post(api, path, {"status": "no_show"})
    cancelled_is_not_a_choice = post(api, path, {"status": "cancelled"})

    assert early.status_code == 409
    assert early.json() == {"detail": "The meeting has not started yet.", "code": "invalid_state"}
    assert no_show.status_code == 200
    assert no_show.json()["status"] == "no_show"
    assert cancelled_is_not_a_choice.status_code == 400
    assert cancelled_is_not_a_choice.json() == {"status": ['"cancelled" is not a valid choice.']}
    assert Appointment.objects.get().status == AppointmentStatus.NO_SHOW


def test_a_finished_appointment_cannot_be_cancelled(team: Team, api: Client) -> None:
    done = AppointmentFactory(salesperson=team.ana, lead=team.lead, status=AppointmentStatus.DONE)

    response = post(api, f"{APPOINTMENTS}{done.pk}/cancel/", {})

    assert response.status_code == 409
    assert response.json() == {
        "detail": "A finished appointment (done or no-show) cannot be cancelled.",
        "code": "invalid_state",
    }


@pytest.mark.parametrize("action", ["", "reschedule/", "cancel/", "status/"])
def test_an_unknown_appointment_is_404(team: Team, api: Client, action: str) -> None:
    body = {"start": "2026-11-26T16:00:00-03:00", "status": "done"}
    path = f"{APPOINTMENTS}999999/{action}"

    response = api.get(path) if not action else post(api, path, body)

    assert response.status_code == 404
    assert response.json() == {"detail": "No such appointment.", "code": "not_found"}


def test_reading_one_appointment(team: Team, api: Client) -> None:
    created = post(api, APPOINTMENTS, book_body(team)).json()

    assert api.get(f"{APPOINTMENTS}{created['id']}/").json() == created


# --- Bad input: always a 4xx, never a 500, nothing written ---------------------------------------

JSON = "application/json"
START = '"start": "2026-11-26T15:00:00-03:00"'
# Bodies no endpoint can read.
MALFORMED: list[tuple[str, bytes, str]] = [
    ("not-json", b"{lead: 1", JSON),
    ("truncated", b'{"lead": 1, "start": "2026', JSON),
    ("list", b"[1, 2]", JSON),
    ("string", b'"hello"', JSON),
    ("null", b"null", JSON),
    ("nan", b'{"lead": NaN}', JSON),
    ("infinity", b'{"duration": Infinity}', JSON),
    ("huge-number", b'{"lead": 1' + b"0" * 5000 + b"}", JSON),
    ("deep", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("latin-1", '{"notes": "ação"}'.encode("latin-1"), JSON),
    ("form", b"lead=1&start=2026-11-26T15:00:00-03:00", "application/x-www-form-urlencoded"),
    ("text", b"lead", "text/plain"),
]
# Readable bodies with a bad field, per endpoint.
BAD_FIELDS: dict[str, list[tuple[str, str]]] = {
    "": [
        ("empty", "{}"),
        ("lead-huge", f'{{"lead": 99999999999999999999999, {START}, "idempotency_key": "k"}}'),
        ("lead-float", f'{{"lead": 1.5, {START}, "idempotency_key": "k"}}'),
        ("lead-bool", f'{{"lead": true, {START}, "idempotency_key": "k"}}'),
        ("lead-string", f'{{"lead": "um", {START}, "idempotency_key": "k"}}'),
        ("salesperson-zero", f'{{"lead": 1, "salesperson": 0, {START}, "idempotency_key": "k"}}'),
        ("start-number", '{"lead": 1, "start": 1764180000, "idempotency_key": "k"}'),
        ("start-date", '{"lead": 1, "start": "2026-11-26", "idempotency_key": "k"}'),
        ("key-null-byte", f'{{"lead": 1, {START}, "idempotency_key": "a\\u0000b"}}'),
        ("key-surrogate", f'{{"lead": 1, {START}, "idempotency_key": "\\ud800"}}'),
        ("key-long", f'{{"lead": 1, {START}, "idempotency_key": "{"k" * 300}"}}'),
        ("key-object", f'{{"lead": 1, {START}, "idempotency_key": {{"a": 1}}}}'),
        ("key-blank", f'{{"lead": 1, {START}, "idempotency_key": "  "}}'),
        ("title-list", f'{{"lead": 1, {START}, "idempotency_key": "k", "title": ["x"]}}'),
        ("notes-long", f'{{"lead": 1, {START}, "idempotency_key": "k", "notes": "{"n" * 5001}"}}'),
    ],
    "{id}/reschedule/": [
        ("empty", "{}"),
        ("start-null", '{"start": null}'),
        ("start-far", '{"start": "9999-12-31T23:59:59+14:00"}'),
        ("start-year-1", '{"start": "0001-01-01T00:00:00-12:00"}'),
        ("start-bad-date", '{"start": "2026-02-30T10:00:00"}'),
        ("start-offset-too-big", '{"start": "2026-11-26T15:00:00+25:00"}'),
        ("duration-zero", f'{{{START}, "duration": 0}}'),
        ("duration-huge", f'{{{START}, "duration": 1e308}}'),
        ("duration-text", f'{{{START}, "duration": "meia hora"}}'),
    ],
    "{id}/cancel/": [
        ("reason-list", '{"reason": ["a"]}'),
        ("reason-long", f'{{"reason": "{"r" * 501}"}}'),
        ("reason-null-byte", '{"reason": "a\\u0000"}'),
    ],
    "{id}/status/": [
        ("empty", "{}"),
        ("status-bad", '{"status": "done!"}'),
        ("status-cancelled", '{"status": "cancelled"}'),
        ("status-number", '{"status": 1}'),
    ],
}
ENDPOINTS = list(BAD_FIELDS)
BAD_BODIES = [
    pytest.param(endpoint, body, content_type, id=f"{endpoint or 'book'}:{name}")
    for endpoint in ENDPOINTS
    for name, body, content_type in MALFORMED
] + [
    pytest.param(endpoint, body.encode(), JSON, id=f"{endpoint or 'book'}:{name}")
    for endpoint, bodies in BAD_FIELDS.items()
    for name, body in bodies
]


@pytest.mark.parametrize(("endpoint", "body", "content_type"), BAD_BODIES)
def test_bad_bodies_get_a_4xx_and_change_nothing(
    team: Team, api: Client, endpoint: str, body: bytes, content_type: str
) -> None:
    appointment = AppointmentFactory(salesperson=team.ana, lead=team.lead)
    before = list(Appointment.objects.values())

    response = api.generic(
        "POST", APPOINTMENTS + endpoint.format(id=appointment.pk), body, content_type=content_type
    )

    assert response.status_code in (400, 415), (response.status_code, response.content[:300])
    assert list(Appointment.objects.values()) == before
    assert OutboundAction.objects.count() == 0


def test_a_400_names_every_missing_field(team: Team, api: Client) -> None:
    response = post(api, APPOINTMENTS, {})

    assert response.status_code == 400
    assert response.json() == {
        "lead": ["This field is required."],
        "start": ["This field is required."],
        "idempotency_key": ["This field is required."],
    }


def test_an_id_too_long_for_the_database_is_404(team: Team, api: Client) -> None:
    assert post(api, f"{APPOINTMENTS}{'9' * 30}/cancel/", {}).status_code == 404


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2026-11-26T15:00:00-03:00", "2026-11-26", "done", "no_show", "1"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.dictionaries(
    st.sampled_from(
        [
            "lead",
            "salesperson",
            "start",
            "duration",
            "idempotency_key",
            "title",
            "notes",
            "status",
            "reason",
        ]
    ),
    json_values,
    max_size=6,
)


@settings(
    max_examples=int(os.environ.get("API_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=json_values | field_values, endpoint=st.sampled_from(ENDPOINTS))
def test_no_body_ever_gives_a_500(team: Team, api: Client, body: Any, endpoint: str) -> None:
    appointment = Appointment.objects.filter(lead=team.lead).first() or AppointmentFactory(
        salesperson=team.ana, lead=team.lead
    )

    response = post(api, APPOINTMENTS + endpoint.format(id=appointment.pk), body)

    assert response.status_code in (200, 201, 400, 404, 409), (body, response.content[:300])


@settings(
    max_examples=int(os.environ.get("API_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.dictionaries(
        st.sampled_from(["salesperson", "lead", "from", "days", "duration"]),
        st.text(max_size=30) | st.integers().map(str) | st.sampled_from(["1", "2026-11-26"]),
        max_size=5,
    )
)
def test_no_slot_query_ever_gives_a_500(team: Team, api: Client, query: dict[str, str]) -> None:
    response = api.get(SLOTS, query)

    assert response.status_code in (200, 400), (query, response.content[:300])


# --- OpenAPI -------------------------------------------------------------------------------------


def test_the_schema_documents_the_scheduling_endpoints(team: Team, api: Client) -> None:
    response = api.get("/api/schema/", headers={"accept": "application/json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert sorted(path for path in schema["paths"] if path.startswith("/api/scheduling/")) == [
        "/api/scheduling/appointments/",
        "/api/scheduling/appointments/{id}/",
        "/api/scheduling/appointments/{id}/cancel/",
        "/api/scheduling/appointments/{id}/reschedule/",
        "/api/scheduling/appointments/{id}/status/",
        "/api/scheduling/slots/",
    ]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Api-Key <key>` (create one with `manage.py create_api_key <name>`)",
    }
    book = schema["paths"]["/api/scheduling/appointments/"]["post"]
    assert sorted(book["responses"]) == ["200", "201", "400", "401", "409", "502", "503"]


def test_the_docs_are_for_staff_and_key_holders(admin_client: Client, client: Client) -> None:
    assert admin_client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code in (401, 403)


def test_every_time_in_an_answer_carries_the_sao_paulo_offset(team: Team, api: Client) -> None:
    body = api.get(SLOTS, {"salesperson": team.ana.pk, "days": 1}).json()

    assert body["slots"]
    assert all(s["start"].endswith("-03:00") for s in body["slots"])
