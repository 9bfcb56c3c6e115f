"""Storing what a receiver accepted: the raw request and its events, in one transaction."""

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from kommo_hub.intake.handlers import HANDLERS
from kommo_hub.intake.parsed import ParsedEvent
from kommo_hub.models import EventStatus, InboundEvent, InboundRequest


@dataclass(frozen=True)
class StoreResult:
    request_id: int
    accepted: int
    duplicates: int


def inbound_request_store(
    *,
    source: str,
    body: str,
    content_type: str,
    headers: dict[str, str],
    remote_addr: str | None,
    events: list[ParsedEvent],
) -> StoreResult:
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import process_inbound_event

    accepted = duplicates = 0
    with transaction.atomic():
        request = InboundRequest.objects.create(
            source=source,
            body=body,
            content_type=content_type[:200],
            headers=headers,
            remote_addr=remote_addr,
        )
        for parsed in events:
            handled = parsed.event_type in HANDLERS
            try:
                with transaction.atomic():
                    event = InboundEvent.objects.create(
                        request=request,
                        source=source,
                        event_type=parsed.event_type[:64],
                        dedupe_key=parsed.dedupe_key,
                        external_id=parsed.external_id,
                        payload=parsed.payload,
                        status=EventStatus.RECEIVED if handled else EventStatus.IGNORED,
                        result="" if handled else "no handler for this event type",
                    )
            except IntegrityError:
                duplicates += 1
                continue
            accepted += 1
            if handled:
                enqueue_on_commit(process_inbound_event, event.pk)
        InboundRequest.objects.filter(pk=request.pk).update(
            accepted=accepted, duplicates=duplicates
        )
    return StoreResult(request_id=request.pk, accepted=accepted, duplicates=duplicates)


def safe_headers(meta: dict[str, Any]) -> dict[str, str]:
    """Request headers worth keeping, without anything that could carry a secret."""
    keep = {}
    for key, value in meta.items():
        if not key.startswith("HTTP_") and key not in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
            continue
        name = key.removeprefix("HTTP_").replace("_", "-").title()
        if any(
            word in name.lower()
            for word in ("authorization", "cookie", "secret", "token", "signature")
        ):
            continue
        keep[name] = str(value)[:500]
    return keep
