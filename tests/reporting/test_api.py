"""/api/v1/: auth, lists, filters, pagination, CSV, error bodies, the summaries, no N+1."""

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from kommo_hub.models import ApiKey, ApiKeyScope
from tests.reporting.support import PERIOD, Dataset, lead_assigned, local

pytestmark = pytest.mark.django_db


def rows(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_without_credentials_the_api_answers_401_with_detail_and_code(db: Any) -> None:
    response = Client().get("/api/v1/leads/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Api-Key"
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }


def test_a_scheduling_key_may_not_read_the_reports(db: Any) -> None:
    _key, plain = ApiKey.generate(name="n8n", scope=ApiKeyScope.SCHEDULING)
    response = Client(headers={"authorization": f"Api-Key {plain}"}).get("/api/v1/leads/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_a_reporting_key_may_not_write(api: Client) -> None:
    response = api.post("/api/v1/leads/", {})
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_the_leads_list_filters_by_period_area_salesperson_source_and_status(
    api: Client, data: Dataset
) -> None:
    response = api.get("/api/v1/leads/", PERIOD)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert [lead["id"] for lead in body["results"]] == [
        data.l4.pk,
        data.l3.pk,
        data.l2.pk,
        data.l1.pk,
    ]
    assert body["results"][0] == {
        "id": data.l4.pk,
        "kommo_lead_id": None,
        "name": data.l4.name,
        "source": "website",
        "source_identifier": "",
        "created_at": "2026-11-04T09:00:00-03:00",
        "area_id": data.b.pk,
        "area": "B",
        "salesperson_id": data.carla.pk,
        "salesperson": "Carla",
        "status": "assigned",
    }

    def ids(**params: Any) -> list[int]:
        return [
            lead["id"] for lead in api.get("/api/v1/leads/", {**PERIOD, **params}).json()["results"]
        ]

    assert ids(area=data.b.pk) == [data.l4.pk]
    assert ids(salesperson=data.ana.pk) == [data.l2.pk, data.l1.pk]
    assert ids(source="rdstation") == [data.l2.pk]
    assert ids(status="assigned") == [data.l4.pk, data.l3.pk, data.l2.pk, data.l1.pk]
    assert ids(status="waiting") == []
    # `to` is a local day: the lead of 23:30 on the 3rd (02:30 UTC on the 4th) is in it.
    assert ids(**{"from": "2026-11-03", "to": "2026-11-03"}) == [data.l3.pk, data.l2.pk]


def test_the_assignments_list_carries_the_explanations(api: Client, data: Dataset) -> None:
    body = api.get("/api/v1/assignments/", {**PERIOD, "salesperson": data.carla.pk}).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["lead_id"], row["area"], row["salesperson"], row["kind"]) == (
        data.l4.pk,
        "B",
        "Carla",
        "new",
    )
    assert row["explanation"] == {"steps": ["rule matched"]}
    assert row["decided_at"] == "2026-11-04T09:00:00-03:00"


def test_pagination_pages_by_page_size_and_caps_it_at_500(api: Client, data: Dataset) -> None:
    first = api.get("/api/v1/leads/", {"page_size": 2}).json()
    assert (first["count"], len(first["results"])) == (5, 2)
    assert first["next"].endswith("page=2&page_size=2")
    third = api.get("/api/v1/leads/", {"page_size": 2, "page": 3}).json()
    assert [lead["id"] for lead in third["results"]] == [data.l1.pk]
    assert len(api.get("/api/v1/leads/", {"page_size": 10_000}).json()["results"]) == 5
    missing = api.get("/api/v1/leads/", {"page": 9})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Invalid page.", "code": "not_found"}


def test_every_list_exports_as_csv(api: Client, data: Dataset) -> None:
    leads = api.get("/api/v1/leads/", {**PERIOD, "format": "csv", "page_size": 1})
    assert leads.status_code == 200
    assert leads["Content-Type"] == "text/csv; charset=utf-8"
    exported = rows(leads)
    assert len(exported) == 4  # the whole list, not a page
    assert exported[0]["salesperson"] == "Carla"
    assert exported[0]["created_at"] == "2026-11-04T09:00:00-03:00"
    assignments = rows(api.get("/api/v1/assignments/", {**PERIOD, "format": "csv"}))
    assert [row["explanation"] for row in assignments] == ['{"steps": ["rule matched"]}'] * 4
    speed = rows(api.get("/api/v1/reports/speed-to-lead/", {**PERIOD, "format": "csv"}))
    assert [(r["group"], r["name"], r["median_seconds"]) for r in speed] == [
        ("salesperson", "Ana", "1200.0"),
        ("salesperson", "Bruno", ""),
        ("salesperson", "Carla", "60.0"),
        ("area", "A", "1200.0"),
        ("area", "B", "60.0"),
    ]
    bot = rows(api.get("/api/v1/reports/bot-activity/", {**PERIOD, "format": "csv"}))
    assert bot == [
        {
            "ai_replies": "3",
            "pauses.command": "1",
            "pauses.note": "0",
            "pauses.admin": "0",
            "pauses.api": "0",
            "pauses.takeover": "2",
            "pauses.handoff": "1",
            "pauses.expiry": "0",
            "handoffs": "1",
            "reactivations": "2",
        }
    ]


@pytest.mark.parametrize("url", ["/api/v1/leads/", "/api/v1/reports/funnel/"])
def test_a_bad_date_is_a_400_naming_the_parameter(api: Client, url: str) -> None:
    response = api.get(url, {"from": "2026-11-31"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == ["from"]
    assert body["detail"].startswith("from: ")


def test_a_period_ending_before_it_starts_is_a_400(api: Client) -> None:
    response = api.get("/api/v1/reports/distribution/", {"from": "2026-11-05", "to": "2026-11-01"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "from: 'from' is after 'to'.",
        "code": "invalid",
        "fields": {"from": ["'from' is after 'to'."]},
    }


def test_the_summaries_answer_the_selectors_numbers(api: Client, data: Dataset) -> None:
    per_day = api.get("/api/v1/reports/leads-per-day/", {**PERIOD, "area": data.a.pk}).json()
    assert per_day == {
        "from": "2026-11-02",
        "to": "2026-11-04",
        "results": [
            {"day": "2026-11-02", "leads": 1},
            {"day": "2026-11-03", "leads": 2},
            {"day": "2026-11-04", "leads": 0},
        ],
    }
    distribution = api.get("/api/v1/reports/distribution/", PERIOD).json()["results"]
    assert [
        (r["salesperson"], r["assigned"], r["share"], r["target_share"]) for r in distribution
    ] == [
        ("Ana", 2, 0.6667, 0.75),
        ("Bruno", 1, 0.3333, 0.25),
        ("Carla", 1, 1.0, 1.0),
    ]
    bot = api.get("/api/v1/reports/bot-activity/", PERIOD).json()["results"]
    assert (bot["ai_replies"], bot["handoffs"], bot["reactivations"]) == (3, 1, 2)
    appointments = api.get("/api/v1/reports/appointments/", PERIOD).json()["results"]
    assert [(r["salesperson"], r["done"], r["no_show"], r["total"]) for r in appointments] == [
        ("Ana", 1, 0, 1),
        ("Bruno", 0, 0, 1),
        ("Carla", 0, 1, 2),
    ]
    funnel = api.get("/api/v1/reports/funnel/", PERIOD).json()["results"]
    assert [
        (r["area"], r["source"], r["leads"], r["replied"], r["booked"], r["done"]) for r in funnel
    ] == [
        ("A", "rdstation", 1, 1, 1, 1),
        ("A", "website", 2, 1, 1, 0),
        ("B", "website", 1, 1, 1, 0),
    ]


def test_a_salesperson_session_sees_only_their_own_leads_and_numbers(data: Dataset) -> None:
    user = User.objects.create_user("carla", password="x", is_staff=True)
    data.carla.user = user
    data.carla.save()
    client = Client()
    client.force_login(user)
    leads = client.get("/api/v1/leads/").json()
    assert [lead["id"] for lead in leads["results"]] == [data.l4.pk]
    assignments = client.get("/api/v1/assignments/").json()
    assert [row["lead_id"] for row in assignments["results"]] == [data.l4.pk]
    appointments = client.get("/api/v1/reports/appointments/", PERIOD).json()["results"]
    assert [row["salesperson"] for row in appointments] == ["Carla"]


def test_a_manager_session_sees_everything_and_a_plain_user_nothing(data: Dataset) -> None:
    manager = User.objects.create_superuser("gerente", password="x")
    client = Client()
    client.force_login(manager)
    assert client.get("/api/v1/leads/").json()["count"] == 5
    nobody = User.objects.create_user("ninguem", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get("/api/v1/leads/").status_code == 403


@pytest.mark.parametrize("url", ["/api/v1/leads/", "/api/v1/assignments/"])
def test_the_lists_take_the_same_queries_whatever_the_page_size(
    api: Client, data: Dataset, url: str
) -> None:
    for hour in range(12):
        lead_assigned(local(4, hour), data.bruno, data.a)
    api.get(url)  # the key's last_used_at is written once a minute: not in the counts
    counts = []
    for size in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(url, {"page_size": size})
        assert len(response.json()["results"]) == min(size, 17)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_docs_are_served_without_a_cdn(db: Any) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", password="x"))
    page = client.get("/api/docs/").content.decode()
    assert "cdn" not in page.lower()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page


@pytest.mark.parametrize("value", ["99999999999999999999", "1.5", "0"])
def test_an_id_filter_out_of_range_is_a_400_not_a_500(api: Client, value: str) -> None:
    response = api.get("/api/v1/leads/", {"area": value})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["area"]


@pytest.mark.parametrize("url", ["/api/v1/leads/", "/api/v1/reports/leads-per-day/"])
def test_a_date_beyond_the_supported_range_is_a_400(api: Client, url: str) -> None:
    response = api.get(url, {"to": "9999-12-31"})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["to"]
