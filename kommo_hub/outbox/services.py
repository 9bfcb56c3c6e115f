"""Creating, releasing and retrying outbound actions. Every later flow goes through here."""

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kommo_hub.models import ActionStatus, ActionTarget, InboundEvent, Lead, OutboundAction

N8N_ACTIONS = ("proactive_message", "reply", "schedule", "reminder", "handoff")
LEAD_CREATE = "lead_create"
LEAD_UPDATE = "lead_update"
NOTE_ADD = "note_add"
TASK_ADD = "task_add"


def waiting_reason(*, pk: int, action: str, dead: bool) -> str:
    """The held reason of an action whose predecessor (#pk, `action`) is not done yet."""
    if dead:
        return f"action #{pk} it waits for is dead"
    return f"waiting for action #{pk} ({action})"


def action_enqueue(
    *,
    target: str,
    action: str,
    idempotency_key: str,
    payload: dict[str, Any],
    lead: Lead | None = None,
    source_event: InboundEvent | None = None,
    depends_on: OutboundAction | None = None,
) -> tuple[OutboundAction, bool]:
    """Record an action once per idempotency key; delivery starts when the caller commits.

    With `depends_on`, the action is held until that action is delivered.
    """
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
                "depends_on": depends_on,
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
    depends_on: OutboundAction | None = None,
) -> tuple[OutboundAction, bool]:
    """A write to the Kommo API, delivered through the outbox (rate-limited, retried)."""
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=action,
        idempotency_key=idempotency_key,
        payload={"method": method.upper(), "path": path, "json": body},
        lead=lead,
        source_event=source_event,
        depends_on=depends_on,
    )


def kommo_lead_create(
    *,
    lead: Lead,
    responsible_user_id: int | None,
    pipeline_id: int | None,
    status_id: int | None,
    tags: list[str],
    idempotency_key: str,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """Create the hub lead (and its contact, unless Kommo has it) in Kommo.

    The request is built at send time (kommo_ops.lead_create): the contact is looked up then,
    and a lead that already has its Kommo id by then is not created again.
    """
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=LEAD_CREATE,
        idempotency_key=idempotency_key,
        payload={
            "operation": LEAD_CREATE,
            "lead_id": lead.pk,
            "responsible_user_id": responsible_user_id,
            "pipeline_id": pipeline_id,
            "status_id": status_id,
            "tags": list(tags),
            "state": {},
        },
        lead=lead,
        source_event=source_event,
    )


def kommo_lead_update(
    *,
    lead: Lead,
    body: dict[str, Any],
    idempotency_key: str,
    depends_on: OutboundAction | None = None,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """PATCH the lead in Kommo (responsible user, stage, tags…) once it has its Kommo id."""
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=LEAD_UPDATE,
        idempotency_key=idempotency_key,
        payload={"operation": LEAD_UPDATE, "lead_id": lead.pk, "body": dict(body)},
        lead=lead,
        source_event=source_event,
        depends_on=depends_on,
    )


def kommo_note_add(
    *,
    lead: Lead,
    text: str,
    idempotency_key: str,
    depends_on: OutboundAction | None = None,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """A common note on the lead in Kommo, once it has its Kommo id."""
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=NOTE_ADD,
        idempotency_key=idempotency_key,
        payload={"operation": NOTE_ADD, "lead_id": lead.pk, "text": text},
        lead=lead,
        source_event=source_event,
        depends_on=depends_on,
    )


def kommo_task_add(
    *,
    lead: Lead,
    text: str,
    complete_till: int,
    responsible_user_id: int | None,
    idempotency_key: str,
    task_type_id: int = 1,
    depends_on: OutboundAction | None = None,
    source_event: InboundEvent | None = None,
) -> tuple[OutboundAction, bool]:
    """A task on the lead in Kommo (`complete_till`: unix seconds), once it has its Kommo id."""
    return action_enqueue(
        target=ActionTarget.KOMMO,
        action=TASK_ADD,
        idempotency_key=idempotency_key,
        payload={
            "operation": TASK_ADD,
            "lead_id": lead.pk,
            "text": text,
            "complete_till": int(complete_till),
            "responsible_user_id": responsible_user_id,
            "task_type_id": task_type_id,
        },
        lead=lead,
        source_event=source_event,
        depends_on=depends_on,
    )


def lead_kommo_create_action(*, lead: Lead) -> OutboundAction | None:
    """This lead's lead_create that is not delivered yet (to make later writes wait for it).

    A dead one counts too: what waits for it stays held until a manager retries it.
    """
    return (
        OutboundAction.objects.filter(lead=lead, target=ActionTarget.KOMMO, action=LEAD_CREATE)
        .exclude(status=ActionStatus.DONE)
        .order_by("-pk")
        .first()
    )


def actions_requeue(*, actions: QuerySet[OutboundAction], reset_attempts: bool) -> int:
    """Send held, failed or dead actions again (retry/release by a manager, or config arrived)."""
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import deliver_outbound_action

    with transaction.atomic():
        rows = list(
            actions.filter(
                status__in=[ActionStatus.HELD, ActionStatus.FAILED, ActionStatus.DEAD]
            ).values_list("pk", "status", "action")
        )
        ids = [pk for pk, _status, _action in rows]
        fields: dict[str, Any] = {
            "status": ActionStatus.PENDING,
            "held_reason": "",
            "next_attempt_at": timezone.now(),
            "locked_until": None,
        }
        if reset_attempts:
            fields["attempts"] = 0
        OutboundAction.objects.filter(pk__in=ids).update(**fields)
        for pk, status, action in rows:
            if status == ActionStatus.DEAD:  # what waits for it waits again, no longer in vain
                OutboundAction.objects.filter(depends_on_id=pk, status=ActionStatus.HELD).update(
                    held_reason=waiting_reason(pk=pk, action=action, dead=False)
                )
        for pk in ids:
            enqueue_on_commit(deliver_outbound_action, pk)
    return len(ids)


def dependents_release(*, action: OutboundAction) -> int:
    """`action` is done: what was held waiting for it goes out (call in the DONE transaction)."""
    return actions_requeue(
        actions=OutboundAction.objects.filter(depends_on=action, status=ActionStatus.HELD),
        reset_attempts=False,
    )
