"""A salesperson's landing page, "Meus leads": their current leads with the bot's state in each
conversation, their next appointments, and the leads waiting for their reply (SLA clock).

After logging in a salesperson (a non-manager linked by Salesperson.user) lands here: the admin
index sends them here. Managers keep the admin index.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from botcontrol.models import BotMode, BotState
from kommo_hub import roles
from kommo_hub.models import Conversation
from routing.models import Assignment
from scheduling.models import ACTIVE_STATUSES, Appointment

NEXT_APPOINTMENTS = 10


@dataclass
class ConversationLine:
    conversation: Conversation
    paused: bool
    until: datetime | None


@dataclass
class LeadLine:
    assignment: Assignment
    conversations: list[ConversationLine]


def _conversation_line(conversation: Conversation, now: datetime) -> ConversationLine:
    try:
        state: BotState | None = conversation.bot_state
    except BotState.DoesNotExist:
        state = None
    paused = bool(
        state and state.mode == BotMode.PAUSED and (state.until is None or state.until > now)
    )
    return ConversationLine(
        conversation=conversation, paused=paused, until=state.until if paused and state else None
    )


@login_required
def my_leads(request: HttpRequest) -> HttpResponse:
    person = roles.salesperson_for(request.user)
    if person is None:
        if roles.is_manager(request.user):
            return HttpResponseRedirect(reverse("admin:index"))
        raise PermissionDenied
    now = timezone.now()
    current = list(
        Assignment.objects.filter(salesperson=person, is_current=True)
        .select_related("lead", "area")
        .prefetch_related(
            Prefetch(
                "lead__conversations",
                queryset=Conversation.objects.select_related("bot_state").order_by("-updated_at"),
            )
        )
        .order_by("-decided_at", "-pk")
    )
    leads = [
        LeadLine(
            assignment=a,
            conversations=[_conversation_line(c, now) for c in a.lead.conversations.all()],
        )
        for a in current
    ]
    waiting = sorted(
        (a for a in current if a.responded_at is None and a.sla_due_at is not None),
        key=lambda a: a.sla_due_at or now,
    )
    appointments = list(
        Appointment.objects.filter(salesperson=person, status__in=ACTIVE_STATUSES, ends_at__gt=now)
        .select_related("lead")
        .order_by("starts_at", "pk")[:NEXT_APPOINTMENTS]
    )
    context: dict[str, Any] = {
        "person": person,
        "now": now,
        "leads": leads,
        "waiting": waiting,
        "appointments": appointments,
    }
    return render(request, "kommo_hub/my_leads.html", context)


def admin_index(request: HttpRequest) -> HttpResponse:
    """The admin index; a salesperson who is not a manager goes to "Meus leads" instead."""
    user = request.user
    if user.is_authenticated and user.is_staff and roles.is_scoped_salesperson(user):
        return HttpResponseRedirect(reverse("my-leads"))
    return admin.site.admin_view(admin.site.index)(request)
