"""The report queries on a hand-counted dataset (tests/reporting/support.py)."""

from datetime import date

import pytest

from kommo_hub.reporting import selectors
from kommo_hub.reporting.selectors import percentile
from tests.reporting.support import Dataset

START, END = date(2026, 11, 2), date(2026, 11, 4)
pytestmark = pytest.mark.django_db


def test_leads_per_day_counts_local_days_and_includes_empty_days(data: Dataset) -> None:
    assert selectors.leads_per_day(start=START, end=date(2026, 11, 6)) == [
        {"day": date(2026, 11, 2), "leads": 1},
        {"day": date(2026, 11, 3), "leads": 2},
        {"day": date(2026, 11, 4), "leads": 1},
        {"day": date(2026, 11, 5), "leads": 1},
        {"day": date(2026, 11, 6), "leads": 0},
    ]


def test_leads_per_day_filters_by_area_salesperson_and_source(data: Dataset) -> None:
    by_area = selectors.leads_per_day(start=START, end=END, area=data.b.pk)
    assert [row["leads"] for row in by_area] == [0, 0, 1]
    by_person = selectors.leads_per_day(start=START, end=END, salesperson=data.ana.pk)
    assert [row["leads"] for row in by_person] == [1, 1, 0]
    by_source = selectors.leads_per_day(start=START, end=END, source="rdstation")
    assert [row["leads"] for row in by_source] == [0, 1, 0]


def test_distribution_compares_actual_shares_with_the_membership_weights(data: Dataset) -> None:
    assert selectors.distribution(start=START, end=END) == [
        {
            "area_id": data.a.pk,
            "area": "A",
            "salesperson_id": data.ana.pk,
            "salesperson": "Ana",
            "assigned": 2,
            "share": 0.6667,
            "target_share": 0.75,
        },
        {
            "area_id": data.a.pk,
            "area": "A",
            "salesperson_id": data.bruno.pk,
            "salesperson": "Bruno",
            "assigned": 1,
            "share": 0.3333,
            "target_share": 0.25,
        },
        {
            "area_id": data.b.pk,
            "area": "B",
            "salesperson_id": data.carla.pk,
            "salesperson": "Carla",
            "assigned": 1,
            "share": 1.0,
            "target_share": 1.0,
        },
    ]


def test_speed_to_lead_is_the_first_salesperson_reply_after_the_assignment(
    data: Dataset,
) -> None:
    """Ana: 600 s (the bot answered first: not counted) and 1800 s (her message before the
    assignment is not counted); Bruno never replied (only the bot did); Carla: 60 s."""
    rows = selectors.speed_to_lead(start=START, end=END)
    assert rows == [
        {
            "group": "salesperson",
            "id": data.ana.pk,
            "name": "Ana",
            "assignments": 2,
            "replied": 2,
            "median_seconds": 1200.0,
            "p90_seconds": 1680.0,
        },
        {
            "group": "salesperson",
            "id": data.bruno.pk,
            "name": "Bruno",
            "assignments": 1,
            "replied": 0,
            "median_seconds": None,
            "p90_seconds": None,
        },
        {
            "group": "salesperson",
            "id": data.carla.pk,
            "name": "Carla",
            "assignments": 1,
            "replied": 1,
            "median_seconds": 60.0,
            "p90_seconds": 60.0,
        },
        {
            "group": "area",
            "id": data.a.pk,
            "name": "A",
            "assignments": 3,
            "replied": 2,
            "median_seconds": 1200.0,
            "p90_seconds": 1680.0,
        },
        {
            "group": "area",
            "id": data.b.pk,
            "name": "B",
            "assignments": 1,
            "replied": 1,
            "median_seconds": 60.0,
            "p90_seconds": 60.0,
        },
    ]


def test_a_bot_reply_before_the_salesperson_does_not_count_as_the_first_reply(
    data: Dataset,
) -> None:
    ana = selectors.speed_to_lead(start=START, end=date(2026, 11, 2))[0]
    assert (ana["name"], ana["median_seconds"]) == ("Ana", 600.0)  # not 60 s (the bot's)


def test_bot_activity_counts_ai_replies_pauses_handoffs_and_reactivations(data: Dataset) -> None:
    assert selectors.bot_activity(start=START, end=END) == {
        "ai_replies": 3,
        "pauses": {
            "command": 1,
            "note": 0,
            "admin": 0,
            "api": 0,
            "takeover": 2,
            "handoff": 1,
            "expiry": 0,
        },
        "handoffs": 1,
        "reactivations": 2,
    }


def test_appointments_summary_counts_each_status_per_salesperson(data: Dataset) -> None:
    assert selectors.appointments_summary(start=START, end=END) == [
        {
            "salesperson_id": data.ana.pk,
            "salesperson": "Ana",
            "booked": 0,
            "done": 1,
            "no_show": 0,
            "cancelled": 0,
            "total": 1,
        },
        {
            "salesperson_id": data.bruno.pk,
            "salesperson": "Bruno",
            "booked": 1,
            "done": 0,
            "no_show": 0,
            "cancelled": 0,
            "total": 1,
        },
        {
            "salesperson_id": data.carla.pk,
            "salesperson": "Carla",
            "booked": 0,
            "done": 0,
            "no_show": 1,
            "cancelled": 1,
            "total": 2,
        },
    ]


def test_funnel_follows_leads_per_area_and_source_to_the_meeting_done(data: Dataset) -> None:
    assert selectors.funnel(start=START, end=END) == [
        {
            "area_id": data.a.pk,
            "area": "A",
            "source": "rdstation",
            "leads": 1,
            "replied": 1,
            "booked": 1,
            "done": 1,
        },
        {
            "area_id": data.a.pk,
            "area": "A",
            "source": "website",
            "leads": 2,
            "replied": 1,
            "booked": 1,
            "done": 0,
        },
        {
            "area_id": data.b.pk,
            "area": "B",
            "source": "website",
            "leads": 1,
            "replied": 1,
            "booked": 1,
            "done": 0,
        },
    ]


def test_a_salesperson_scope_keeps_only_their_own_numbers(data: Dataset) -> None:
    own = data.carla.pk
    assert [
        r["leads"] for r in selectors.leads_per_day(start=START, end=END, salesperson_id=own)
    ] == [0, 0, 1]
    assert [
        r["salesperson"] for r in selectors.distribution(start=START, end=END, salesperson_id=own)
    ] == ["Carla"]
    assert [
        (r["group"], r["name"])
        for r in selectors.speed_to_lead(start=START, end=END, salesperson_id=own)
    ] == [
        ("salesperson", "Carla"),
        ("area", "B"),
    ]
    activity = selectors.bot_activity(start=START, end=END, salesperson_id=own)
    assert (activity["ai_replies"], activity["pauses"]["command"], activity["reactivations"]) == (
        0,
        1,
        1,
    )
    assert [
        r["total"] for r in selectors.appointments_summary(start=START, end=END, salesperson_id=own)
    ] == [2]
    assert [r["leads"] for r in selectors.funnel(start=START, end=END, salesperson_id=own)] == [1]


def test_percentile_interpolates_between_ranks_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([10.0], 0.9) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([0.0, 100.0], 0.9) == 90.0
