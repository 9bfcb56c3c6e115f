"""Flow 3's hook in the reply path: does the customer want a meeting, and which slots to offer.

`schedule_action_for(...)` answers the `scheduling` block of an n8n `schedule` action (ARCHITECTURE
§4.2), or None when the messages show no scheduling intent (then the normal `reply` goes out).
The reply path decides what to do with it (a paused conversation gets nothing either way).

    {"timezone": "America/Sao_Paulo", "duration_minutes": 30,
     "intent": "schedule" | "reschedule" | "cancel",
     "proposed": "2026-03-05T18:00:00Z" | null,
     "slots": [{"start": "…Z", "end": "…Z", "salesperson_id": 7}, …]}

Slots come from scheduling.slots.slots_for_lead: the lead's own salesperson's free slots, or,
when they have none within the booking horizon, those of the area's other members (the lead's
area's meeting length, notice and horizon). Of those, the ones offered are:

- an exact time asked for ("amanhã às 15h"): the 3 free slots nearest to it;
- a period or a day ("segunda de manhã", "dia 12"): up to 5 slots inside it, nearest to its start
  first; fewer inside it → completed with the nearest outside;
- no time at all ("quero agendar"): the first 5 free slots.

Always in time order. `cancel` carries no slots (n8n confirms which meeting to cancel).
A lead without any assignment (not routed yet) is offered the default area's members' slots.
"""

from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings

from kommo_hub.models import Conversation, Lead
from kommo_hub.outbox.envelope import iso
from routing.models import Salesperson
from routing.selectors import area_default
from scheduling.intent import SAO_PAULO, Intent, IntentKind, detect_intent
from scheduling.slots import Slot, SlotRules, free_slots, local_tz, slots_for_lead

NEAREST_TO_A_TIME = 3
SLOTS_OFFERED = 5


def schedule_action_for(
    *, conversation: Conversation | None, lead: Lead, messages_text: str, at: datetime
) -> dict[str, Any] | None:
    """The `scheduling` block for these customer messages (sent at `at`), or None."""
    intent = detect_intent(messages_text, at=at)
    if intent is None:
        return None
    rules, slots = _offer(lead=lead, now=at)
    chosen = [] if intent.kind == IntentKind.CANCEL else choose_slots(slots, intent=intent)
    return {
        "timezone": settings.TIME_ZONE,
        "duration_minutes": rules.duration_minutes,
        "intent": intent.kind.value,
        "proposed": iso(intent.proposed_start),
        "slots": [
            {"start": iso(s.start), "end": iso(s.end), "salesperson_id": s.salesperson_id}
            for s in chosen
        ],
    }


def _offer(*, lead: Lead, now: datetime) -> tuple[SlotRules, list[Slot]]:
    offer = slots_for_lead(lead=lead, now=now)
    if offer is not None:
        return offer.rules, offer.slots
    area = area_default()
    rules = SlotRules.for_area(area)
    if area is None:
        return rules, []
    people = Salesperson.objects.filter(
        memberships__area=area, memberships__active=True, active=True
    ).order_by("memberships__priority", "name", "pk")
    ids = list(dict.fromkeys(people.values_list("pk", flat=True)))
    end = rules.horizon_end(now, local_tz())
    return rules, free_slots(salesperson_ids=ids, rules=rules, start=now, end=end, now=now)


def choose_slots(slots: list[Slot], *, intent: Intent) -> list[Slot]:
    """The slots to offer for this intent (see the module's docstring), in time order."""
    start = intent.proposed_start
    if start is None:
        return sorted(slots)[:SLOTS_OFFERED]

    def distance(slot: Slot) -> tuple[timedelta, datetime]:
        return abs(slot.start - start), slot.start

    if intent.proposed_period is None:
        return sorted(sorted(slots, key=distance)[:NEAREST_TO_A_TIME])
    first, last = _period_bounds(start, intent.proposed_period)
    inside = sorted(s for s in slots if first <= s.start < last)[:SLOTS_OFFERED]
    chosen = set(inside)
    outside = sorted((s for s in slots if s not in chosen), key=distance)
    return sorted([*inside, *outside[: SLOTS_OFFERED - len(inside)]])


def _period_bounds(start: datetime, period: tuple[time, time]) -> tuple[datetime, datetime]:
    day = start.astimezone(SAO_PAULO).date()
    return (
        datetime.combine(day, period[0], SAO_PAULO),
        datetime.combine(day, period[1], SAO_PAULO),
    )
