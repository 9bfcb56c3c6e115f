"""Scheduling intent in Brazilian Portuguese (scheduling.intent) and Flow 3's hook in the reply
path, the `scheduling` block with the slots nearest to what the customer asked for."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from kommo_hub.flows.schedule_intent import schedule_action_for
from routing.models import TimeOff
from scheduling.intent import (
    AFTERNOON,
    BUSINESS_DAY,
    EVENING,
    MORNING,
    Intent,
    IntentKind,
    detect_intent,
    fold,
)
from tests.factories import LeadFactory
from tests.routing.factories import TimeOffFactory
from tests.scheduling.booking_support import MONDAY, Team, at, team_build

SP = ZoneInfo("America/Sao_Paulo")
# Every case is read on Wednesday 04/03/2026 at 10:00 in São Paulo.
AT = datetime(2026, 3, 4, 10, 0, tzinfo=SP)

S, R, C = IntentKind.SCHEDULE, IntentKind.RESCHEDULE, IntentKind.CANCEL


def sp(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SP)


CASES: list[tuple[str, IntentKind | None, datetime | None, tuple[time, time] | None]] = [
    # schedule, without a time
    ("quero agendar", S, None, None),
    ("Quero AGENDAR uma reunião", S, None, None),
    ("marcar uma reunião", S, None, None),
    ("tem horário?", S, None, None),
    ("dá pra marcar uma call?", S, None, None),
    ("Oi! Gostaria de marcar uma visita técnica", S, None, None),
    # schedule, with the time asked for
    ("pode ser amanhã às 15h?", S, sp(3, 5, 15), None),
    ("Bora marcar uma call amanhã 10h?", S, sp(3, 5, 10), None),
    ("amanhã às 15h", S, sp(3, 5, 15), None),
    ("segunda de manhã", S, sp(3, 9, 8), MORNING),
    ("dia 12 às 10h", S, sp(3, 12, 10), None),
    ("hoje à tarde", S, sp(3, 4, 12), AFTERNOON),
    ("depois de amanhã 9h30", S, sp(3, 6, 9, 30), None),
    ("sexta 14:00", S, sp(3, 6, 14), None),
    ("12/12 às 16h", S, sp(12, 12, 16), None),
    ("quero agendar uma reunião na segunda às 14h", S, sp(3, 9, 14), None),
    ("Podemos marcar para o dia 20?", S, sp(3, 20, 8), BUSINESS_DAY),
    ("consegue às 3 da tarde?", S, sp(3, 4, 15), None),
    ("amanhã às 3 e meia", S, sp(3, 5, 15, 30), None),
    ("pode ser meio-dia?", S, sp(3, 4, 12), None),
    ("tem horário disponível na quinta entre 14h e 16h?", S, sp(3, 5, 14), (time(14), time(16))),
    ("pode ser depois das 15h?", S, sp(3, 4, 15), (time(15), time(21))),
    ("Não posso amanhã, pode ser sexta às 10h?", S, sp(3, 6, 10), None),
    ("não dá pra marcar amanhã?", S, sp(3, 5, 8), BUSINESS_DAY),
    ("Oi, vocês têm disponibilidade na segunda?", S, sp(3, 9, 8), BUSINESS_DAY),
    (
        "gostaria de agendar uma demonstração para terça-feira que vem às 10h",
        S,
        sp(3, 10, 10),
        None,
    ),
    # a weekday is never today: on a Wednesday, "quarta" is next week's
    ("quero marcar pra quarta", S, sp(3, 11, 8), BUSINESS_DAY),
    ("sexta da semana que vem às 9h", S, sp(3, 13, 9), None),
    # "dia 4" on the 4th: today while the time asked for is ahead, else next month's
    ("dia 4 às 11h", S, sp(3, 4, 11), None),
    ("dia 4 às 9h", S, sp(4, 4, 9), None),
    ("podemos conversar daqui a 2 horas?", S, sp(3, 4, 12), None),
    ("Pode ser amanhã? De preferência de manhã", S, sp(3, 5, 8), MORNING),
    ("me liga amanhã de manhã", S, sp(3, 5, 8), MORNING),
    ("às 7 tá bom?", S, sp(3, 5, 7), None),
    ("dia 12 de março às 10h", S, sp(3, 12, 10), None),
    ("QUERO AGENDAR PRA HOJE A NOITE", S, sp(3, 4, 18), EVENING),
    ("Pode ser segunda às 10h ou terça às 14h?", S, sp(3, 9, 10), None),
    # reschedule
    ("quero remarcar", R, None, None),
    ("tem como trocar o horário da reunião para quinta?", R, sp(3, 5, 8), BUSINESS_DAY),
    (
        "Preciso cancelar a reunião de amanhã, podemos remarcar pra sexta às 10h?",
        R,
        sp(3, 6, 10),
        None,
    ),
    ("quero cancelar a reunião e marcar outra na sexta", R, sp(3, 6, 8), BUSINESS_DAY),
    ("reagendar para 12/12 às 16h", R, sp(12, 12, 16), None),
    # cancel (the day says which meeting)
    ("preciso cancelar a reunião", C, None, None),
    ("desmarca a call de amanhã por favor", C, sp(3, 5, 8), BUSINESS_DAY),
    ("não vou poder comparecer na reunião", C, None, None),
    ("Nao quero mais a reuniao, pode cancelar", C, None, None),
    # no intent
    ("não quero agendar nada", None, None, None),
    ("agendamento de entrega?", None, None, None),
    ("qual o preço?", None, None, None),
    ("Boa tarde, tudo bem?", None, None, None),
    ("Obrigado, até amanhã!", None, None, None),
    ("amanhã te mando o comprovante", None, None, None),
    ("posso pagar amanhã?", None, None, None),
    ("qual o horário de funcionamento?", None, None, None),
    ("quero cancelar meu pedido", None, None, None),
    ("qual a marca do produto?", None, None, None),
    ("a reunião de amanhã está confirmada?", None, None, None),
    ("amanhã", None, None, None),
    ("quero adiar o pagamento", None, None, None),
    ("custa R$ 15,00?", None, None, None),
    ("", None, None, None),
]


@pytest.mark.parametrize(("text", "kind", "start", "period"), CASES, ids=[c[0] for c in CASES])
def test_each_message_gets_its_intent_and_the_time_it_proposes(
    text: str,
    kind: IntentKind | None,
    start: datetime | None,
    period: tuple[time, time] | None,
) -> None:
    intent = detect_intent(text, at=AT)

    if kind is None:
        assert intent is None
        return
    assert intent is not None
    assert (intent.kind, intent.proposed_start, intent.proposed_period) == (kind, start, period)
    assert intent.why.startswith(f"{kind.value}: ")


def test_the_proposed_start_is_in_sao_paulo_whatever_zone_the_message_time_is_in() -> None:
    intent = detect_intent("pode ser amanhã às 15h?", at=AT.astimezone(UTC))

    assert intent is not None
    assert intent.proposed_start == datetime(2026, 3, 5, 18, 0, tzinfo=UTC)
    assert intent.proposed_start.tzinfo == SP


def test_a_message_late_at_night_proposes_for_the_next_day_in_sao_paulo_not_utc() -> None:
    # 23:30 in São Paulo is already the next day in UTC: "amanhã" is still Thursday.
    intent = detect_intent("amanhã às 9h?", at=datetime(2026, 3, 4, 23, 30, tzinfo=SP))

    assert intent is not None
    assert intent.proposed_start == sp(3, 5, 9)


def test_the_explanation_names_the_trigger_and_what_was_read_as_the_time() -> None:
    intent = detect_intent("Pode ser amanhã às 15h?", at=AT)

    assert intent == Intent(
        kind=S,
        proposed_start=sp(3, 5, 15),
        proposed_period=None,
        why="schedule: 'pode ser'; proposed 2026-03-05 15:00 from 'amanha, as 15h'",
    )


def test_accents_and_case_do_not_matter() -> None:
    assert fold("Amanhã ÀS 15H, Terça-Feira") == "amanha as 15h, terca-feira"
    assert detect_intent("AMANHA AS 15H?", at=AT) == detect_intent("amanhã às 15h?", at=AT)


def test_a_naive_message_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        detect_intent("quero agendar", at=datetime(2026, 3, 4, 10, 0))


# --- schedule_action_for: the `scheduling` block -------------------------------------------------

# The team of tests/scheduling/booking_support.py: Ana and Bruno work Mon–Fri 09–12 and 13–18;
# 30-minute meetings, no notice, 14 days ahead; the lead (Maria) is Ana's. Monday 23/11 08:00.
NOW = at(MONDAY, 8)


@pytest.fixture
def team(db: None) -> Team:
    with time_machine.travel(NOW, tick=False):
        return team_build()


def block(team: Team, text: str) -> dict[str, object] | None:
    with time_machine.travel(NOW, tick=False):
        return schedule_action_for(conversation=None, lead=team.lead, messages_text=text, at=NOW)


def slot(day: int, hour: int, minute: int, person_id: int) -> dict[str, object]:
    start = datetime(2026, 11, day, hour, minute, tzinfo=SP).astimezone(UTC)
    return {
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "salesperson_id": person_id,
    }


def test_an_exact_time_gets_the_three_free_slots_nearest_to_it_of_the_leads_salesperson(
    team: Team,
) -> None:
    assert block(team, "pode ser amanhã às 15h?") == {
        "timezone": "America/Sao_Paulo",
        "duration_minutes": 30,
        "intent": "schedule",
        "proposed": "2026-11-24T18:00:00Z",
        "slots": [
            slot(24, 14, 30, team.ana.pk),
            slot(24, 15, 0, team.ana.pk),
            slot(24, 15, 30, team.ana.pk),
        ],
    }


def test_a_period_gets_up_to_five_slots_inside_it(team: Team) -> None:
    result = block(team, "segunda de manhã")

    assert result is not None
    assert result["proposed"] == "2026-11-30T11:00:00Z"
    assert result["slots"] == [
        slot(30, 9, 0, team.ana.pk),
        slot(30, 9, 30, team.ana.pk),
        slot(30, 10, 0, team.ana.pk),
        slot(30, 10, 30, team.ana.pk),
        slot(30, 11, 0, team.ana.pk),
    ]


def test_a_period_with_few_free_slots_is_completed_with_the_nearest_outside_it(
    team: Team,
) -> None:
    # Tuesday "entre 17h e 18h": 17:00 and 17:30 inside; then the nearest before it.
    result = block(team, "amanhã entre 17h e 18h?")

    assert result is not None
    assert result["slots"] == [
        slot(24, 15, 30, team.ana.pk),
        slot(24, 16, 0, team.ana.pk),
        slot(24, 16, 30, team.ana.pk),
        slot(24, 17, 0, team.ana.pk),
        slot(24, 17, 30, team.ana.pk),
    ]


def test_no_time_asked_for_gets_the_first_five_free_slots(team: Team) -> None:
    result = block(team, "quero agendar uma reunião")

    assert result is not None
    assert (result["intent"], result["proposed"]) == ("schedule", None)
    assert result["slots"] == [
        slot(23, 9, 0, team.ana.pk),
        slot(23, 9, 30, team.ana.pk),
        slot(23, 10, 0, team.ana.pk),
        slot(23, 10, 30, team.ana.pk),
        slot(23, 11, 0, team.ana.pk),
    ]


def test_when_the_leads_salesperson_has_no_free_slot_the_areas_others_are_offered(
    team: Team,
) -> None:
    TimeOffFactory(
        salesperson=team.ana,
        kind=TimeOff.Kind.VACATION,
        first_day=date(2026, 11, 23),
        last_day=date(2026, 12, 31),
    )

    result = block(team, "pode ser amanhã às 15h?")

    assert result is not None
    assert result["slots"] == [
        slot(24, 14, 30, team.bruno.pk),
        slot(24, 15, 0, team.bruno.pk),
        slot(24, 15, 30, team.bruno.pk),
    ]


def test_a_reschedule_carries_slots_and_a_cancel_none(team: Team) -> None:
    moved = block(team, "quero remarcar para quarta às 10h")
    cancelled = block(team, "preciso cancelar a reunião de amanhã")

    assert moved is not None
    assert (moved["intent"], moved["proposed"]) == ("reschedule", "2026-11-25T13:00:00Z")
    assert moved["slots"] == [
        slot(25, 9, 30, team.ana.pk),
        slot(25, 10, 0, team.ana.pk),
        slot(25, 10, 30, team.ana.pk),
    ]
    assert cancelled == {
        "timezone": "America/Sao_Paulo",
        "duration_minutes": 30,
        "intent": "cancel",
        "proposed": "2026-11-24T11:00:00Z",
        "slots": [],
    }


def test_messages_without_a_scheduling_intent_get_no_block(team: Team) -> None:
    assert block(team, "qual o preço do plano anual?") is None
    assert block(team, "não quero agendar nada") is None


def test_a_lead_not_routed_yet_is_offered_the_default_areas_slots(team: Team) -> None:
    team.area.is_default = True
    team.area.save()
    stranger = LeadFactory()

    with time_machine.travel(NOW, tick=False):
        result = schedule_action_for(
            conversation=None, lead=stranger, messages_text="amanhã às 9h?", at=NOW
        )

    assert result is not None
    assert result["slots"] == [
        slot(24, 9, 0, team.ana.pk),
        slot(24, 9, 0, team.bruno.pk),
        slot(24, 9, 30, team.ana.pk),
    ]
