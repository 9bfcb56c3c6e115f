"""LGPD erasure on request: no trace of the person in any table or the cache, figures unchanged."""

from datetime import UTC, date, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from kommo_hub.models import (
    ActionStatus,
    Contact,
    EventStatus,
    InboundEvent,
    Lead,
    LeadNote,
    Message,
    OutboundAction,
)
from kommo_hub.reporting import selectors as reports
from privacy.models import ErasureAction, ErasureLog, ErasureTrigger
from privacy.selectors import leads_of_person
from privacy.services import lead_anonymize, lead_delete
from scheduling.models import Interaction
from tests.factories import LeadFactory
from tests.reporting.support import dataset_build

from .support import (
    NAME,
    PHONE,
    TRACES,
    person_build,
    snapshot,
    traces_in_cache,
    traces_in_database,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


def test_after_anonymizing_the_person_appears_in_no_row_of_any_table() -> None:
    person = person_build(NOW)
    other = LeadFactory(name="Bruno Carvalho", phone="+5511912345678", email="bruno@example.com")
    assert len(traces_in_database(TRACES)) > 20  # the scan does see the person before

    report = lead_anonymize(lead=person.lead, reason="pedido do titular #77", now=NOW)

    assert traces_in_database(TRACES) == []
    assert traces_in_cache(TRACES) == []
    other.refresh_from_db()
    assert (other.name, other.phone, other.email) == (
        "Bruno Carvalho",
        "+5511912345678",
        "bruno@example.com",
    )
    assert report.changed
    log = ErasureLog.objects.get()
    assert (log.lead_id, log.action, log.trigger, log.reason, log.erased_at) == (
        person.lead.pk,
        ErasureAction.ANONYMIZE,
        ErasureTrigger.REQUEST,
        "pedido do titular #77",
        NOW,
    )
    assert log.external["kommo_lead_id"] == 18754321
    assert len(log.external["supabase_interactions"]) == 1
    assert traces_in_database([str(log.rows), str(log.external)]) == []  # nothing personal


def test_anonymizing_keeps_the_rows_and_what_the_reports_read() -> None:
    person = person_build(NOW)
    messages = list(Message.objects.values_list("direction", "author_kind", "sent_at"))

    lead_anonymize(lead=person.lead, reason="pedido", now=NOW)

    lead = Lead.objects.get(pk=person.lead.pk)
    assert (lead.name, lead.phone, lead.email, lead.fields, lead.source) == (
        f"Lead #{lead.pk} (anonimizado)",
        "",
        "",
        {},
        "website",
    )
    assert lead.contact is not None
    assert lead.contact.name == f"Contato #{lead.contact.pk} (anonimizado)"
    assert list(Message.objects.values_list("direction", "author_kind", "sent_at")) == messages
    assert set(Message.objects.values_list("text", flat=True)) == {"[removido]"}
    assert set(LeadNote.objects.values_list("text", flat=True)) == {"[removido]"}
    # Nothing is left to send to the person; what was delivered stays delivered.
    assert set(OutboundAction.objects.values_list("action", "status")) >= {
        ("reply", ActionStatus.DONE),
        ("reminder", ActionStatus.SKIPPED),
    }
    assert not OutboundAction.objects.filter(
        status__in=[ActionStatus.PENDING, ActionStatus.HELD, ActionStatus.FAILED]
    ).exists()
    assert not InboundEvent.objects.filter(
        status__in=[EventStatus.RECEIVED, EventStatus.FAILED]
    ).exists()


def _figures(start: date, end: date) -> dict[str, Any]:
    return {
        "leads_per_day": reports.leads_per_day(start=start, end=end),
        "distribution": reports.distribution(start=start, end=end),
        "speed_to_lead": reports.speed_to_lead(start=start, end=end),
        "bot_activity": reports.bot_activity(start=start, end=end),
        "appointments": reports.appointments_summary(start=start, end=end),
        "funnel": reports.funnel(start=start, end=end),
    }


@pytest.mark.parametrize("erase", [lead_anonymize, lead_delete])
def test_every_report_is_identical_before_and_after_erasing_every_lead(erase: Any) -> None:
    data = dataset_build()
    start, end = date(2026, 11, 1), date(2026, 11, 7)
    before = _figures(start, end)
    assert before["funnel"]  # there is something to compare
    assert before["speed_to_lead"]

    for lead in [data.l1, data.l2, data.l3, data.l4, data.l5]:
        erase(lead=lead, reason="pedido", now=NOW)

    assert _figures(start, end) == before
    assert ErasureLog.objects.count() == 5


def test_a_second_run_changes_nothing_and_logs_nothing() -> None:
    person = person_build(NOW)
    lead_anonymize(lead=person.lead, reason="pedido", now=NOW)
    after_first = snapshot()

    report = lead_anonymize(lead=person.lead, reason="pedido", now=NOW)

    assert not report.changed
    assert report.log_id is None
    assert snapshot() == after_first


def test_a_dry_run_writes_nothing_but_tells_what_would_change() -> None:
    person = person_build(NOW)
    before = snapshot()

    report = lead_anonymize(lead=person.lead, reason="pedido", now=NOW, dry_run=True)

    assert snapshot() == before
    assert report.rows["lead"] == 1
    assert report.rows["message"] == 3
    assert report.log_id is None


def test_deleting_removes_the_rows_no_report_reads_and_keeps_the_lead_anonymized() -> None:
    person = person_build(NOW)

    report = lead_delete(lead=person.lead, reason="pedido", now=NOW)

    assert traces_in_database(TRACES) == []
    assert not Contact.objects.exists()
    assert not LeadNote.objects.exists()
    assert not Interaction.objects.exists()
    assert not InboundEvent.objects.filter(lead=person.lead).exists()
    assert Lead.objects.get(pk=person.lead.pk).name == f"Lead #{person.lead.pk} (anonimizado)"
    assert Message.objects.count() == 3
    assert report.rows["deleted_contact"] == 1
    assert ErasureLog.objects.get().action == ErasureAction.DELETE


def test_the_person_is_found_by_phone_email_or_any_lead_through_contacts_and_phones() -> None:
    first = LeadFactory(phone="+5521998765432", email="ana@example.com")
    same_contact = LeadFactory(contact=first.contact, phone="", email="")
    same_email = LeadFactory(phone="", email="ana@example.com")
    LeadFactory(phone="+5511912345678", email="outra@example.com")
    expected = [first.pk, same_contact.pk, same_email.pk]

    assert list(leads_of_person(phone="(21) 99876-5432").values_list("pk", flat=True)) == expected
    assert list(leads_of_person(email="ANA@example.com").values_list("pk", flat=True)) == expected
    assert list(leads_of_person(lead_id=same_contact.pk).values_list("pk", flat=True)) == expected
    assert not leads_of_person(email="ninguem@example.com").exists()


def test_the_command_erases_every_lead_of_the_person_and_lists_what_to_erase_in_kommo() -> None:
    person = person_build(NOW)
    out = StringIO()

    call_command("lgpd_erase", "--phone", "(21) 99876-5432", "--reason", "protocolo 9", stdout=out)

    assert traces_in_database(TRACES) == []
    text = out.getvalue()
    assert f"lead #{person.lead.pk}:" in text
    assert "Kommo: lead 18754321, contact -" in text
    assert "Supabase historico_interacoes:" in text
    assert "1 lead(s) were anonymized" in text
    assert PHONE not in text
    assert NAME not in text


def test_the_command_dry_run_writes_nothing() -> None:
    person_build(NOW)
    before = snapshot()
    out = StringIO()

    call_command(
        "lgpd_erase", "--email", "ana.lima@example.com", "--reason", "x", "--dry-run", stdout=out
    )

    assert snapshot() == before
    assert "1 lead(s) would be anonymized" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--reason", "x"], "say whose data to erase"),
        (["--lead", "1"], "--reason is required"),
        (["--email", "ninguem@example.com", "--reason", "x"], "no lead found for n"),
    ],
)
def test_the_command_refuses_to_guess(args: list[str], problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        call_command("lgpd_erase", *args)

    assert not ErasureLog.objects.exists()


def test_the_erasure_log_is_in_the_admin_read_only(admin_client: Any) -> None:
    person = person_build(NOW)
    lead_anonymize(lead=person.lead, reason="protocolo 9", now=NOW, requested_by="dpo")
    log = ErasureLog.objects.get()

    listing = admin_client.get("/admin/privacy/erasurelog/")
    detail = admin_client.get(f"/admin/privacy/erasurelog/{log.pk}/change/")

    assert listing.status_code == 200
    assert "protocolo 9" in listing.content.decode()
    assert detail.status_code == 200
    assert admin_client.get("/admin/privacy/erasurelog/add/").status_code == 403
    assert admin_client.post(f"/admin/privacy/erasurelog/{log.pk}/delete/").status_code == 403
    assert ErasureLog.objects.count() == 1
