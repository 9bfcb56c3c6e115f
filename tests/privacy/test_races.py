"""An erasure and a worker handling the same lead at once (Postgres: real row locks)."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from kommo_hub.models import Alert, Lead
from privacy.services import lead_anonymize
from tests.factories import LeadFactory

NOW = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
NEW_PHONE = "+5511933334444"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_erasure_waits_for_a_worker_holding_the_lead_and_erases_what_it_wrote() -> None:
    lead = LeadFactory(name="Maria Souza", phone="+5511911112222")
    locked = threading.Event()

    def worker() -> None:
        try:
            with transaction.atomic():
                Lead.objects.select_for_update().get(pk=lead.pk)
                locked.set()
                time.sleep(0.5)
                Lead.objects.filter(pk=lead.pk).update(phone=NEW_PHONE)
                Alert.objects.create(kind=Alert.Kind.ROUTING, message=f"lead {NEW_PHONE} waits")
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    assert locked.wait(5)
    started = time.monotonic()

    lead_anonymize(lead=lead, reason="pedido", now=NOW)

    waited = time.monotonic() - started
    thread.join()
    assert waited > 0.3
    assert Lead.objects.get(pk=lead.pk).phone == ""
    assert Alert.objects.get().message == "lead [removido] waits"
