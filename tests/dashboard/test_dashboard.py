"""The managers' dashboard on the admin home: the right numbers for a small dataset, in SVG and
in the tables; only managers see it; the period selector; a constant number of queries."""

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from botcontrol.models import BotChange, BotMode, ChangeVia
from kommo_hub.dashboard import days_from_query, period_for
from kommo_hub.models import ActionStatus, Conversation, Lead, Message
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from scheduling.models import AppointmentStatus
from tests.factories import LeadFactory, OutboundActionFactory
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db
SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=SP)  # a Wednesday


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


# --- Reading the page ------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Each chart's table, by the chart's key (figure id hub-chart-<key>), as rows of cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svg_titles: dict[str, list[str]] = {}
        self._chart: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self._title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get("id") or ""
        if tag == "figure" and found.startswith("hub-chart-"):
            self._chart = found.removeprefix("hub-chart-")
            self.tables[self._chart] = []
            self.svg_titles[self._chart] = []
        elif tag == "tr" and self._chart:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "title" and self._chart:
            self._in_title, self._title = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._chart and self._row is not None:
            self.tables[self._chart].append(self._row)
            self._row = None
        elif tag == "title" and self._in_title and self._chart:
            self.svg_titles[self._chart].append("".join(self._title))
            self._in_title = False
        elif tag == "figure":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self._title.append(data)


def read(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


def home(client: Client, days: int | None = None) -> str:
    url = reverse("admin:index") + (f"?days={days}" if days else "")
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# --- A small dataset --------------------------------------------------------------------------


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SP)


def lead_at(name: str, created: datetime) -> Lead:
    lead = LeadFactory(name=name)
    Lead.objects.filter(pk=lead.pk).update(created_at=created)
    return lead


def assign(
    lead: Lead, person: Salesperson, area: Area, decided: datetime, replied_after: int | None
) -> Assignment:
    return Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=decided,
        responded_at=None if replied_after is None else decided + timedelta(minutes=replied_after),
    )


@pytest.fixture
def dataset() -> None:
    labour = AreaFactory(name="Trabalhista")
    pensions = AreaFactory(name="Previdência")
    ana = SalespersonFactory(name="Ana")
    bruno = SalespersonFactory(name="Bruno")
    carla = SalespersonFactory(name="Carla")
    AreaMembershipFactory(area=labour, salesperson=ana, weight=1)
    AreaMembershipFactory(area=labour, salesperson=bruno, weight=1)
    AreaMembershipFactory(area=pensions, salesperson=carla, weight=1)

    assign(lead_at("L1", at(24, 9)), ana, labour, at(24, 9), replied_after=10)
    assign(lead_at("L2", at(24, 11)), bruno, labour, at(24, 11), replied_after=30)
    assign(lead_at("L3", at(25, 8)), ana, labour, at(25, 8), replied_after=20)
    assign(lead_at("L4", at(25, 9)), carla, pensions, at(25, 9), replied_after=None)
    lead_at("L5", at(25, 9, 30))  # not routed (yet)
    # Outside the last 7 days, inside the last 90.
    assign(lead_at("Old", at(1, 12, month=10)), ana, labour, at(1, 12, month=10), replied_after=60)

    second = Lead.objects.get(name="L2")
    chats = {
        name: Conversation.objects.create(chat_id=f"chat-{name}", lead=Lead.objects.get(name=name))
        for name in ("L1", "L2", "L3", "Old")
    }
    sends = [
        ("L1", Message.AuthorKind.BOT, at(24, 9, 1)),
        ("L1", Message.AuthorKind.BOT, at(24, 9, 2)),
        ("L1", Message.AuthorKind.SALESPERSON, at(24, 9, 10)),
        ("L2", Message.AuthorKind.SALESPERSON, at(24, 11, 30)),
        ("L3", Message.AuthorKind.BOT, at(25, 8, 1)),
        ("L3", Message.AuthorKind.SALESPERSON, at(25, 8, 20)),
        ("L3", Message.AuthorKind.SALESPERSON, at(25, 8, 40)),  # not the first reply
        ("Old", Message.AuthorKind.SALESPERSON, at(1, 13, month=10)),
    ]
    for n, (name, kind, sent) in enumerate(sends):
        Message.objects.create(
            conversation=chats[name],
            external_id=f"m{n}",
            direction=Message.Direction.OUTGOING,
            author_kind=kind,
            sent_at=sent,
        )
    Message.objects.create(
        conversation=chats["L3"],
        external_id="in",
        direction=Message.Direction.INCOMING,
        author_kind=Message.AuthorKind.CUSTOMER,
        sent_at=at(25, 8),
    )
    for status, delivered in [
        (ActionStatus.DONE, at(24, 9, 1)),
        (ActionStatus.DONE, at(25, 8, 1)),
        (ActionStatus.FAILED, None),
    ]:
        OutboundActionFactory(action="reply", status=status, delivered_at=delivered, lead=second)
    chat = chats["L3"]
    for mode, via, when in [
        (BotMode.PAUSED, ChangeVia.TAKEOVER, at(25, 8, 20)),
        (BotMode.PAUSED, ChangeVia.HANDOFF, at(25, 9)),
        (BotMode.ACTIVE, ChangeVia.COMMAND, at(25, 9, 30)),
    ]:
        BotChange.objects.create(conversation=chat, mode=mode, via=via, at=when)

    for status, starts in [
        (AppointmentStatus.BOOKED, at(25, 15)),
        (AppointmentStatus.DONE, at(24, 15)),
        (AppointmentStatus.NO_SHOW, at(23, 15)),
        (AppointmentStatus.CANCELLED, at(22, 15)),
        (AppointmentStatus.DONE, at(2, 15, month=10)),
    ]:
        AppointmentFactory(
            salesperson=ana,
            lead=None,
            status=status,
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
        )


# --- A manager sees the numbers -------------------------------------------------------------


@pytest.mark.usefixtures("dataset")
def test_a_manager_sees_the_last_7_days_in_charts_and_tables(admin_client: Client) -> None:
    html = home(admin_client, days=7)
    page = read(html)

    assert 'id="hub-dashboard"' in html
    assert "From 11/19/2026 to 11/25/2026" in html
    for title in (
        "Leads per day, by area",
        "Distribution against target",
        "Speed to lead",
        "AI and people in the conversations",
        "Appointments",
    ):
        assert f"<title>{title}</title>" in html, title
    assert html.count('<svg class="hub-chart"') == 6  # the activity has two
    assert page.tables["leads"] == [
        ["Day", "Previdência", "Trabalhista", "No area"],
        ["11/24/2026", "0", "2", "0"],
        ["11/25/2026", "1", "1", "1"],
    ]
    assert "5 leads in total." in html
    assert page.tables["distribution"] == [
        ["Salesperson · area", "Leads", "Actual share", "Target share"],
        ["Carla · Previdência", "1", "100.0%", "100.0%"],
        ["Ana · Trabalhista", "2", "66.7%", "50.0%"],
        ["Bruno · Trabalhista", "1", "33.3%", "50.0%"],
    ]
    assert page.tables["speed"] == [
        ["Salesperson", "Assigned", "Replied", "Median", "90th percentile"],
        ["Ana", "2", "2", "15.0 min", "19.0 min"],
        ["Bruno", "1", "1", "30.0 min", "30.0 min"],
        ["Carla", "1", "0", "—", "—"],
    ]
    assert "1 assigned lead without a reply yet." in html
    assert page.tables["activity"] == [
        ["Activity", "Total"],
        ["AI replies", "2"],
        ["Human messages", "4"],
        ["Pauses", "2"],
        ["Hand-offs to a person", "1"],
    ]
    assert page.tables["appointments"] == [
        ["Salesperson", "Booked", "Done", "No-show", "Cancelled", "Total"],
        ["Ana", "1", "1", "1", "1", "4"],
        ["Total", "1", "1", "1", "1", "4"],
    ]


@pytest.mark.usefixtures("dataset")
def test_every_bar_and_point_has_a_title_a_screen_reader_can_read(admin_client: Client) -> None:
    page = read(home(admin_client, days=7))

    assert page.svg_titles["leads"] == [
        "Leads per day, by area",
        "11/24/2026, Trabalhista: 2 leads",
        "11/25/2026, Previdência: 1 lead",
        "11/25/2026, Trabalhista: 1 lead",
        "11/25/2026, No area: 1 lead",
    ]
    assert "Ana · Trabalhista, Actual share: 66.7%" in page.svg_titles["distribution"]
    assert "Ana · Trabalhista, Target share: 50.0%" in page.svg_titles["distribution"]
    assert "Bruno, 90th percentile: 30.0 min" in page.svg_titles["speed"]
    assert not any(title.startswith("Carla") for title in page.svg_titles["speed"])
    assert "AI replies, Total: 2" in page.svg_titles["activity"]
    assert "Hand-offs to a person, Total: 1" in page.svg_titles["activity"]
    assert "Messages per day" in page.svg_titles["activity"]
    assert "11/24/2026, AI messages: 2" in page.svg_titles["activity"]
    assert "11/25/2026, Salespeople's messages: 2" in page.svg_titles["activity"]
    assert "No-show, Appointments: 1" in page.svg_titles["appointments"]


@pytest.mark.usefixtures("dataset")
def test_the_period_selector_widens_to_90_days(admin_client: Client) -> None:
    html = home(admin_client, days=90)
    page = read(html)

    assert "From 08/28/2026 to 11/25/2026" in html
    assert '<strong aria-current="page">Last 90 days</strong>' in html
    assert '<a href="?days=7">Last 7 days</a>' in html
    assert '<a href="?days=30">Last 30 days</a>' in html
    assert page.tables["leads"][1] == ["10/01/2026", "0", "1", "0"]
    assert "6 leads in total." in html
    assert page.tables["speed"][1] == ["Ana", "3", "3", "20.0 min", "52.0 min"]
    assert page.tables["appointments"][1] == ["Ana", "1", "2", "1", "1", "5"]


@pytest.mark.usefixtures("dataset")
def test_the_default_period_is_30_days_and_unknown_values_fall_back_to_it(
    admin_client: Client,
) -> None:
    assert '<strong aria-current="page">Last 30 days</strong>' in home(admin_client)
    response = admin_client.get(reverse("admin:index") + "?days=1000")
    assert '<strong aria-current="page">Last 30 days</strong>' in response.content.decode()
    assert [days_from_query(v) for v in ("7", "30", "90", "", None, "x", "-7", "8")] == [
        7,
        30,
        90,
        30,
        30,
        30,
        30,
        30,
    ]


def test_a_period_is_whole_local_days_ending_today() -> None:
    period = period_for(7)

    assert period.start == datetime(2026, 11, 19, 0, 0, tzinfo=SP)
    assert period.end == datetime(2026, 11, 26, 0, 0, tzinfo=SP)
    assert len(period.dates) == 7


def test_an_empty_period_says_so_instead_of_drawing_empty_charts(admin_client: Client) -> None:
    html = home(admin_client, days=7)

    # Leads, distribution, speed and appointments; the activity's zeros are still drawn.
    assert html.count("Nothing in this period.") == 4
    assert "0 leads in total." in html


@pytest.mark.usefixtures("dataset")
def test_numbers_and_dates_are_localized_in_portuguese(admin_client: Client) -> None:
    response = admin_client.get(
        reverse("admin:index") + "?days=7", headers={"accept-language": "pt-BR"}
    )
    html = response.content.decode()
    page = read(html)

    assert response.headers["Content-Language"] == "pt-br"
    assert "De 19/11/2026 a 25/11/2026" in html
    assert page.tables["distribution"][2] == ["Ana · Trabalhista", "2", "66,7%", "50,0%"]
    assert page.tables["speed"][1] == ["Ana", "2", "2", "15,0 min", "19,0 min"]
    assert page.tables["leads"][0] == ["Dia", "Previdência", "Trabalhista", "Sem área"]
    assert "<title>Leads por dia, por área</title>" in html


# --- Who sees it ------------------------------------------------------------------------------


def staff_user(username: str, group: str | None) -> User:
    user = User.objects.create_user(username=username, password="pw-123-secret", is_staff=True)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.mark.usefixtures("dataset")
def test_a_member_of_gerentes_sees_the_dashboard(client: Client) -> None:
    client.force_login(staff_user("gerente", "Gerentes"))

    assert 'id="hub-dashboard"' in home(client, days=7)


@pytest.mark.usefixtures("dataset")
def test_a_salesperson_does_not_see_the_dashboard(client: Client) -> None:
    user = staff_user("ana", "Vendedores")
    Salesperson.objects.filter(name="Ana").update(user=user)
    client.force_login(user)

    response = client.get(reverse("admin:index") + "?days=7", follow=True)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="hub-dashboard"' not in html
    assert "Distribution against target" not in html
    assert 'class="hub-chart"' not in html


def test_staff_outside_the_managers_group_does_not_see_the_dashboard(client: Client) -> None:
    client.force_login(staff_user("suporte", None))

    html = home(client, days=7)

    assert 'id="hub-dashboard"' not in html
    assert 'class="hub-chart"' not in html


# --- Fast -------------------------------------------------------------------------------------


def leads_for_query_count(count: int, first: int = 0) -> None:
    area = AreaFactory()
    people = [SalespersonFactory() for _ in range(3)]
    for person in people:
        AreaMembershipFactory(area=area, salesperson=person)
    for n in range(first, first + count):
        lead = lead_at(f"Q{n}", NOW - timedelta(hours=n))
        assign(lead, people[n % 3], area, NOW - timedelta(hours=n), replied_after=n % 7)
        chat = Conversation.objects.create(chat_id=f"q-{n}", lead=lead)
        Message.objects.create(
            conversation=chat,
            external_id=f"q-{n}",
            direction=Message.Direction.OUTGOING,
            author_kind=Message.AuthorKind.BOT,
            sent_at=NOW - timedelta(hours=n),
        )
        AppointmentFactory(salesperson=people[n % 3], lead=lead, starts_at=NOW - timedelta(hours=n))


def queries_for_home(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        home(client, days=90)
    return len(queries.captured_queries)


def test_the_number_of_queries_does_not_grow_with_the_data(admin_client: Client) -> None:
    leads_for_query_count(5)
    few = queries_for_home(admin_client)
    leads_for_query_count(45, first=5)
    many = queries_for_home(admin_client)

    assert Lead.objects.count() == 50
    assert few == many
    assert re.search(r"50 leads in total\.", home(admin_client, days=90))
