"""Creating, releasing and retrying outbound actions. Every later flow goes through here."""

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kommo_hub.models import ActionStatus, ActionTarget, InboundEvent, Lead, OutboundAction

N8N_ACTIONS = ("proactive_message", "reply", "schedule", "reminder", "handoff")


def action_enqueue(
    *,
    target: str,
    action: str,
    idempotency_key: str,
    payload: dict[str, Any],
    lead: Lead | None = None,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """Record an action once per idempotency key; delivery starts when the caller commits."""
    if target not in ActionTarget.values:
        raise ValueError(f"unknown target {target!r}")
    if target == ActionTarget.N8N and action not in N8N_ACTIONS:
        raise ValueError(f"unknown n8n action {action!r}")
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import deliver_outbound_action

    with transaction.atomic():
        obj, created = OutboundAction.objects.get_or_create(
            idempotency_key=idempotency_key,
            defaults={
                "target": target,
                "action": action,
                "payload": payload,
                "lead": lead,
                "source_event": source_event,
            },
        )
        if created:
            enqueue_on_commit(deliver_outbound_action, obj.pk)
    return obj, created


def kommo_write(
    *,
    method: str,
    path: str,
    body: Any,
    idempotency_key: str,
    action: str,
    lead: Lead | None = None,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """A write to the Kommo API, delivered through the outbox (rate-limited, retried)."""
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=action,
        idempotency_key=idempotency_key,
        payload={"method": method.upper(), "path": path, "json": body},
        lead=lead,
        source_event=source_event,
    )


def actions_requeue(*, actions: QuerySet[OutboundAction], reset_attempts: bool) -> int:
    """Send held, failed or dead actions again (retry/release by a manager, or config arrived)."""
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import deliver_outbound_action

    with transaction.atomic():
        ids = list(
            actions.filter(
                status__in=[ActionStatus.HELD, ActionStatus.FAILED, ActionStatus.DEAD]
            ).values_list("pk", flat=True)
        )
        fields: dict[str, Any] = {
            "status": ActionStatus.PENDING,
            "held_reason": "",
            "next_attempt_at": timezone.now(),
            "locked_until": None,
        }
        if reset_attempts:
            fields["attempts"] = 0
        OutboundAction.objects.filter(pk__in=ids).update(**fields)
        for pk in ids:
            enqueue_on_commit(deliver_outbound_action, pk)
    return len(ids)
