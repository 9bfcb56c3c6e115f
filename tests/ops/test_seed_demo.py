import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from kommo_hub.models import ActionStatus, EventStatus, InboundEvent, Lead, OutboundAction
from routing.models import Area, Assignment, RoutingRule

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
    assert Assignment.objects.filter(is_current=True, salesperson__isnull=False).count() == 3
    assert Area.objects.count() == 2
    assert RoutingRule.objects.count() == 2
    # Kommo and n8n are not configured in the demo: Flow 1's actions wait, visible, never lost.
    actions = OutboundAction.objects.order_by("pk")
    assert sorted((a.action, a.status) for a in actions) == [
        ("lead_create", ActionStatus.HELD),
        ("lead_create", ActionStatus.HELD),
        ("lead_update", ActionStatus.HELD),
        ("proactive_message", ActionStatus.HELD),
        ("proactive_message", ActionStatus.HELD),
        # The demo customer's WhatsApp message: its reply waits for the end of its window.
        ("reply", ActionStatus.PENDING),
    ]
    for action in actions:
        if action.action == "reply":
            continue
        if action.target == "kommo":
            assert action.held_reason == "Kommo not configured"
        else:
            assert action.held_reason.startswith(f"waiting for action #{action.depends_on_id}")
