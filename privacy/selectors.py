"""Reads for erasure: whose leads a request covers, which leads the retention period has passed."""

from datetime import datetime
from typing import Any

from django.db.models import DateTimeField, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest

from kommo_hub.intake.normalize import normalize_email, normalize_phone
from kommo_hub.models import InboundEvent, InboundRequest, Lead, Message, OutboundAction
from privacy.models import ErasureLog
from routing.models import Assignment
from scheduling.models import Appointment

# A person's leads are found through shared contacts, phones and e-mails; a few hops are enough
# (each hop can only add leads that share one of those with a lead already found).
MAX_HOPS = 5
TERMINAL_EVENTS = ("processed", "ignored", "dead")


def leads_of_person(
    *, lead_id: int | None = None, phone: str = "", email: str = ""
) -> QuerySet[Lead]:
    """Every lead of the person: the given lead, phone or e-mail, then every lead sharing a
    contact, phone or e-mail with one found."""
    match = Q(pk__in=[])
    if lead_id is not None:
        match |= Q(pk=lead_id)
    if phone.strip():
        match |= Q(phone_raw=phone.strip())
        if normalized_phone := normalize_phone(phone).value:
            match |= Q(phone=normalized_phone) | Q(contact__phone=normalized_phone)
    if email.strip():
        normalized_email = normalize_email(email).value or email.strip().lower()
        match |= Q(email__iexact=normalized_email) | Q(contact__email__iexact=normalized_email)
    found = set(Lead.objects.filter(match).values_list("pk", flat=True))
    for _hop in range(MAX_HOPS):
        rows = list(
            Lead.objects.filter(pk__in=found).values_list(
                "contact_id", "phone", "email", "contact__phone", "contact__email"
            )
        )
        contacts = {row[0] for row in rows if row[0]}
        phones = {value for row in rows for value in (row[1], row[3]) if value}
        emails = {value for row in rows for value in (row[2], row[4]) if value}
        more = set(
            Lead.objects.filter(
                Q(contact_id__in=contacts)
                | Q(phone__in=phones)
                | Q(email__in=emails)
                | Q(contact__phone__in=phones)
                | Q(contact__email__in=emails)
            ).values_list("pk", flat=True)
        )
        if more <= found:
            break
        found |= more
    return Lead.objects.filter(pk__in=found).order_by("pk")


def _latest(queryset: QuerySet[Any], field: str) -> Subquery:
    return Subquery(queryset.order_by(f"-{field}").values(field)[:1], output_field=DateTimeField())


def leads_with_last_activity() -> QuerySet[Lead]:
    """Leads annotated with `last_activity`: the latest of the lead's own changes, its messages,
    events, actions, routing decisions and appointments (a future meeting keeps it active)."""
    lead = OuterRef("pk")
    activity = [
        _latest(Message.objects.filter(conversation__lead=lead), "created_at"),
        _latest(InboundEvent.objects.filter(lead=lead), "created_at"),
        _latest(OutboundAction.objects.filter(lead=lead), "updated_at"),
        _latest(Assignment.objects.filter(lead=lead), "decided_at"),
        _latest(Appointment.objects.filter(lead=lead), "ends_at"),
        _latest(Appointment.objects.filter(lead=lead), "updated_at"),
    ]
    # SQLite's GREATEST is NULL when any argument is: a missing kind of activity counts as none.
    return Lead.objects.annotate(
        last_activity=Greatest(
            "created_at", "updated_at", *(Coalesce(part, F("created_at")) for part in activity)
        )
    )


def leads_due_for_retention(*, cutoff: datetime) -> QuerySet[Lead]:
    """Leads whose last activity is older than the cutoff and that were not erased since."""
    erased_since = ErasureLog.objects.filter(
        lead_id=OuterRef("pk"), erased_at__gte=OuterRef("last_activity")
    )
    return (
        leads_with_last_activity()
        .filter(**{"last_activity__lt": cutoff})  # an annotation
        .exclude(Exists(erased_since))
        .order_by("pk")
    )


def requests_due_for_clearing(*, cutoff: datetime) -> QuerySet[InboundRequest]:
    """Old raw requests tied to no lead, whose events are all finished, still holding a body,
    headers or an address."""
    tied_or_open = InboundEvent.objects.filter(request=OuterRef("pk")).filter(
        Q(lead__isnull=False) | ~Q(status__in=TERMINAL_EVENTS)
    )
    return (
        InboundRequest.objects.filter(received_at__lt=cutoff)
        .exclude(Exists(tied_or_open))
        .filter(~Q(body="") | ~Q(headers={}) | Q(remote_addr__isnull=False))
        .order_by("pk")
    )
