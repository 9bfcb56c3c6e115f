"""Processing one inbound event: claim it, run its handler, record the outcome on the row."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, DataError, transaction
from django.utils import timezone

from kommo_hub.intake.handlers import HANDLERS, Deferred, PermanentError
from kommo_hub.leasing import backoff_delay, claim_row
from kommo_hub.models import Alert, EventStatus, InboundEvent

logger = logging.getLogger("kommo_hub.processing")

WAITING = [EventStatus.RECEIVED, EventStatus.FAILED]


class LostClaim(Exception):
    """Our lease ran out and another worker took the event: roll back, let them finish."""


def event_process(*, event_id: int) -> str:
    token = claim_row(InboundEvent, pk=event_id, waiting=WAITING, working=EventStatus.PROCESSING)
    if token is None:
        return "not claimed"
    event = InboundEvent.objects.get(pk=event_id)
    log = {"event_id": event.pk, "event_type": event.event_type, "attempt": event.attempts}
    if event.attempts > settings.EVENT_MAX_ATTEMPTS:
        _give_up(event, token, f"gave up after {event.attempts - 1} attempts: {event.last_error}")
        logger.error("event dead", extra=log)
        return "dead"
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        _finish(event, token, EventStatus.IGNORED, "no handler for this event type")
        return "ignored"
    try:
        with transaction.atomic():
            outcome = handler(event)
            status = EventStatus.IGNORED if outcome.ignored else EventStatus.PROCESSED
            _finish(
                event,
                token,
                status,
                outcome.result,
                lead_id=outcome.lead.pk if outcome.lead else None,
            )
    except LostClaim:
        logger.warning("event claim lost; another worker has it", extra=log)
        return "lost claim"
    except Deferred as exc:
        _defer(event, token, str(exc), exc.seconds)
        logger.info("event deferred: %s", exc, extra=log)
        return "deferred"
    except (PermanentError, DataError) as exc:  # DataError: the values do not fit the columns
        _give_up(event, token, str(exc) if isinstance(exc, PermanentError) else f"DataError: {exc}")
        logger.warning("event dead: %s", exc, extra=log)
        return "dead"
    except Exception as exc:  # any handler bug or outage is recorded on the row and retried
        if _retry_later(event, token, f"{type(exc).__name__}: {exc}"):
            logger.exception("event failed", extra=log)
            return "failed"
        logger.exception("event dead", extra=log)
        return "dead"
    logger.info("event %s", status, extra={**log, "result": outcome.result})
    return str(status)


def _finish(
    event: InboundEvent, token: str, status: str, result: str, *, lead_id: int | None = None
) -> None:
    fields: dict[str, object] = {
        "status": status,
        "result": result[:255],
        "last_error": "",
        "locked_until": None,
        "next_attempt_at": None,
        "processed_at": timezone.now(),
    }
    if lead_id is not None:
        fields["lead_id"] = lead_id
    updated = InboundEvent.objects.filter(pk=event.pk, claim_token=token).update(**fields)
    if updated != 1:
        raise LostClaim


def _retry_later(event: InboundEvent, token: str, error: str) -> bool:
    """Schedule the next attempt; False when the attempts are used up and the event is dead."""
    if event.attempts >= settings.EVENT_MAX_ATTEMPTS:
        _give_up(event, token, f"gave up after {event.attempts} attempts: {error}")
        return False
    try:
        InboundEvent.objects.filter(pk=event.pk, claim_token=token).update(
            status=EventStatus.FAILED,
            last_error=error[:4000],
            locked_until=None,
            next_attempt_at=timezone.now() + backoff_delay(event.attempts),
        )
    except DatabaseError:
        logger.exception("could not record the failure; the lease will expire and retry")
    return True


def _defer(event: InboundEvent, token: str, reason: str, seconds: float) -> None:
    InboundEvent.objects.filter(pk=event.pk, claim_token=token).update(
        status=EventStatus.FAILED,
        attempts=max(0, event.attempts - 1),
        last_error=f"deferred: {reason}"[:4000],
        locked_until=None,
        next_attempt_at=timezone.now() + timedelta(seconds=seconds),
    )


def _give_up(event: InboundEvent, token: str, error: str) -> None:
    with transaction.atomic():
        updated = InboundEvent.objects.filter(pk=event.pk, claim_token=token).update(
            status=EventStatus.DEAD,
            last_error=error[:4000],
            locked_until=None,
            next_attempt_at=None,
        )
        if updated:
            Alert.objects.create(
                kind=Alert.Kind.EVENT_DEAD,
                message=f"Event #{event.pk} ({event.event_type}): {error[:500]}",
            )


def event_replay(*, event_ids: list[int]) -> int:
    """Put events back in the queue (whatever their status); handlers are idempotent."""
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import process_inbound_event

    with transaction.atomic():
        updated = (
            InboundEvent.objects.filter(pk__in=event_ids)
            .exclude(status=EventStatus.PROCESSING, locked_until__gt=timezone.now())
            .update(
                status=EventStatus.RECEIVED, attempts=0, next_attempt_at=None, locked_until=None
            )
        )
        for event_id in InboundEvent.objects.filter(
            pk__in=event_ids, status=EventStatus.RECEIVED
        ).values_list("pk", flat=True):
            enqueue_on_commit(process_inbound_event, event_id)
    return updated
