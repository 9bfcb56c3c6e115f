import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from kommo_hub.models import ActionStatus, EventStatus, InboundEvent, Lead, OutboundAction

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_twice_leaves_one_set_of_demo_data_with_every_event_processed() -> None:
    call_command("seed_demo")
    call_command("seed_demo")

    users = get_user_model().objects.order_by("username")
    assert [(u.username, u.is_superuser) for u in users] == [("gerente", True), ("vendedor", False)]
    assert InboundEvent.objects.count() == 4
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert sorted(Lead.objects.values_list("source", flat=True)) == [
        "kommo",
        "rdstation",
        "website",
    ]
    action = OutboundAction.objects.get()
    assert (action.action, action.status, action.held_reason) == (
        "proactive_message",
        ActionStatus.HELD,
        "n8n not configured",
    )
