"""LGPD retention: leads idle for longer than LGPD_RETENTION_DAYS are anonymized, once."""

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command

from kommo_hub.models import (
    Conversation,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    Message,
)
from kommo_hub.ops.jobs import JOBS
from privacy.models import ErasureLog, ErasureTrigger
from privacy.services import last_activity, retention_run
from tests.factories import InboundEventFactory, InboundRequestFactory, LeadFactory

from .support import TRACES, person_build, snapshot, traces_in_database

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=800)


@pytest.fixture(autouse=True)
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


def aged(lead: Lead, at: datetime) -> Lead:
    Lead.objects.filter(pk=lead.pk).update(created_at=at, updated_at=at)
    lead.refresh_from_db()
    return lead


def talked(lead: Lead, at: datetime, text: str) -> None:
    conversation, _ = Conversation.objects.get_or_create(chat_id=f"chat-{lead.pk}", lead=lead)
    message = Message.objects.create(
        conversation=conversation,
        external_id=f"m-{lead.pk}-{at.timestamp()}",
        direction="in",
        author_kind="customer",
        text=text,
        sent_at=at,
    )
    Message.objects.filter(pk=message.pk).update(created_at=at)


def test_only_leads_idle_for_longer_than_the_period_are_anonymized() -> None:
    idle = aged(LeadFactory(name="Idle Person", phone="+5511911110000"), OLD)
    talked(idle, OLD, "old words")
    recent = aged(LeadFactory(name="Recent Person"), NOW - timedelta(days=10))
    old_but_talking = aged(LeadFactory(name="Talking Person"), OLD)
    talked(old_but_talking, NOW - timedelta(days=3), "still here")

    report = retention_run(now=NOW, days=730)

    assert [erased.lead_id for erased in report.leads] == [idle.pk]
    assert Lead.objects.get(pk=idle.pk).name == f"Lead #{idle.pk} (anonimizado)"
    assert Lead.objects.get(pk=recent.pk).name == "Recent Person"
    assert Lead.objects.get(pk=old_but_talking.pk).name == "Talking Person"
    assert set(Message.objects.values_list("text", flat=True)) == {"[removido]", "still here"}
    log = ErasureLog.objects.get()
    assert (log.lead_id, log.trigger, log.reason, log.erased_at) == (
        idle.pk,
        ErasureTrigger.RETENTION,
        "no activity for 730 days",
        NOW,
    )


def test_a_future_meeting_keeps_an_old_lead_active() -> None:
    from tests.routing.factories import SalespersonFactory
    from tests.scheduling.factories import AppointmentFactory

    lead = aged(LeadFactory(name="Meeting Person"), OLD)
    AppointmentFactory(
        lead=lead, salesperson=SalespersonFactory(), starts_at=NOW + timedelta(days=2)
    )

    assert retention_run(now=NOW, days=730).leads == []
    assert last_activity(lead=lead) == NOW + timedelta(days=2, minutes=30)


def test_the_second_run_is_a_no_op() -> None:
    person = person_build(OLD)
    aged(person.lead, OLD)
    Message.objects.update(created_at=OLD)
    InboundEvent.objects.update(created_at=OLD)
    _old_everything()
    first = retention_run(now=NOW, days=730)
    assert [erased.lead_id for erased in first.leads] == [person.lead.pk]
    assert traces_in_database(TRACES) == []
    after_first = snapshot()

    second = retention_run(now=NOW + timedelta(days=1), days=730)

    assert (second.leads, second.requests_cleared) == ([], 0)
    assert snapshot() == after_first


def _old_everything() -> None:
    from kommo_hub.models import OutboundAction
    from routing.models import Assignment
    from scheduling.models import Appointment

    OutboundAction.objects.update(updated_at=OLD, created_at=OLD)
    Assignment.objects.update(decided_at=OLD)
    Appointment.objects.update(updated_at=OLD)
    InboundRequest.objects.update(received_at=OLD)


def test_a_dry_run_writes_nothing() -> None:
    aged(LeadFactory(), OLD)
    InboundRequestFactory(body='{"email": "x@example.com"}')
    InboundRequest.objects.update(received_at=OLD)
    before = snapshot()

    report = retention_run(now=NOW, days=730, dry_run=True)

    assert len(report.leads) == 1
    assert report.requests_cleared == 1
    assert snapshot() == before


def test_zero_days_turns_retention_off() -> None:
    aged(LeadFactory(name="Ancient"), NOW - timedelta(days=5000))

    assert retention_run(now=NOW, days=0).leads == []
    assert Lead.objects.get().name == "Ancient"


def test_old_raw_requests_tied_to_no_lead_lose_body_headers_and_address() -> None:
    orphan = InboundRequestFactory(
        body='{"email": "x@example.com"}', headers={"User-Agent": "x"}, remote_addr="203.0.113.1"
    )
    orphan_event = InboundEventFactory(request=orphan, status=EventStatus.IGNORED)
    waiting = InboundRequestFactory(body="waiting")
    InboundEventFactory(request=waiting, status=EventStatus.FAILED)
    active_lead = LeadFactory()
    tied = InboundRequestFactory(body="tied")
    InboundEventFactory(request=tied, lead=active_lead, status=EventStatus.PROCESSED)
    recent = InboundRequestFactory(body="recent")
    InboundRequest.objects.exclude(pk=recent.pk).update(received_at=OLD)

    report = retention_run(now=NOW, days=730)

    assert report.requests_cleared == 1
    orphan.refresh_from_db()
    assert (orphan.body, orphan.headers, orphan.remote_addr) == ("", {}, None)
    assert InboundEvent.objects.get(pk=orphan_event.pk).payload == {}
    assert dict(InboundRequest.objects.exclude(pk=orphan.pk).values_list("pk", "body")) == {
        waiting.pk: "waiting",
        tied.pk: "tied",
        recent.pk: "recent",
    }


def test_the_command_uses_the_setting_and_reports_what_it_did(settings: Any) -> None:
    settings.LGPD_RETENTION_DAYS = 30
    idle = aged(LeadFactory(kommo_lead_id=555), NOW - timedelta(days=31))
    out = StringIO()

    call_command("lgpd_retention", stdout=out)

    assert out.getvalue() == (
        "cutoff 2026-10-26 13:00 UTC: 1 lead(s) were anonymized, 0 raw request(s) were cleared\n"
        "Also erase outside the hub (the hub cannot):\n"
        f"lead #{idle.pk}\n"
        "  Kommo: lead 555, contact -\n"
    )


def test_the_command_override_and_dry_run() -> None:
    aged(LeadFactory(name="Keep"), NOW - timedelta(days=10))
    out = StringIO()

    call_command("lgpd_retention", "--older-than-days", "5", "--dry-run", stdout=out)

    assert "1 lead(s) would be anonymized" in out.getvalue()
    assert Lead.objects.get().name == "Keep"
    assert not ErasureLog.objects.exists()


def test_the_scheduler_runs_retention_daily_with_the_setting(settings: Any) -> None:
    settings.LGPD_RETENTION_DAYS = 730
    aged(LeadFactory(), OLD)
    every, job = JOBS["lgpd_retention"]

    assert every == 86400
    assert job() == 1
    assert job() == 0
