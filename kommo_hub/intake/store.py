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
    request_fields = {
        "source": source,
        "body": body,
        "content_type": content_type[:200],
        "headers": headers,
        "remote_addr": remote_addr,
    }
    try:
        # The usual case, no event seen before: one INSERT per row, no savepoints, no UPDATE.
        return _store(request_fields, events, savepoints=False)
    except IntegrityError:
        # A dedupe key exists (or came twice in this body): all of that was rolled back; store
        # again with a savepoint per event, so that duplicates are counted and skipped.
        return _store(request_fields, events, savepoints=True)


def _store(
    request_fields: dict[str, Any], events: list[ParsedEvent], *, savepoints: bool
) -> StoreResult:
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import process_inbound_event

    accepted = duplicates = 0
    with transaction.atomic():
        # Written as all accepted; corrected below if some were duplicates.
        request = InboundRequest.objects.create(**request_fields, accepted=len(events))
        for parsed in events:
            handled = parsed.event_type in HANDLERS
            event = InboundEvent(
                request=request,
                source=request.source,
                event_type=parsed.event_type[:64],
                dedupe_key=parsed.dedupe_key,
                external_id=parsed.external_id,
                payload=parsed.payload,
                status=EventStatus.RECEIVED if handled else EventStatus.IGNORED,
                result="" if handled else "no handler for this event type",
            )
            if savepoints:
                try:
                    with transaction.atomic():
                        event.save(force_insert=True)
                except IntegrityError:
                    duplicates += 1
                    continue
            else:
                event.save(force_insert=True)  # a duplicate raises: the caller retries
            accepted += 1
            if handled:
                enqueue_on_commit(process_inbound_event, event.pk)
        if duplicates:
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
        keep[name] = storable_text(str(value)[:500])
    return keep


def storable_text(value: str) -> str:
    """Postgres holds neither NUL nor unpaired surrogates, whatever a client put in a header."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
