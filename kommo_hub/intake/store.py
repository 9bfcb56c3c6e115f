"""Storing what a receiver accepted: the raw request and its events, in one transaction."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.tasks import task_backends

from kommo_hub.intake.handlers import HANDLERS
from kommo_hub.intake.parsed import ParsedEvent
from kommo_hub.models import EventStatus, InboundEvent, InboundRequest
from kommo_hub.redaction import (
    mask_webhook_secrets,
    might_hold_secret,
    redact_body,
    redact_payloads,
)


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
    if might_hold_secret(body):
        # Secrets a client sent (a token, a password field) are never stored, nor shown later.
        body = redact_body(body)
        payloads = redact_payloads([parsed.payload for parsed in events])
        if payloads is not None:
            events = [
                dataclasses.replace(parsed, payload=payload)
                for parsed, payload in zip(events, payloads, strict=True)
            ]
    request_fields = {
        "source": source,
        "body": body,
        "content_type": content_type[:200],
        "headers": headers,
        "remote_addr": remote_addr,
    }
    try:
        # The usual case, no event seen before: every row written at once, no savepoints.
        if len(events) <= ONE_STATEMENT_MAX_EVENTS and _one_statement_possible():
            return _store_in_one_statement(request_fields, events)
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
            for word in (
                "authorization",
                "cookie",
                "secret",
                "token",
                "signature",
                "apikey",
                "api-key",
                "password",
            )
        ):
            continue
        # A Referer or Origin may be a receiver's URL, with its secret.
        keep[name] = storable_text(mask_webhook_secrets(str(value)[:500]))
    return keep


def storable_text(value: str) -> str:
    """Postgres holds neither NUL nor unpaired surrogates, whatever a client put in a header."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


# Postgres takes at most 65,535 parameters in one statement (six per event here).
ONE_STATEMENT_MAX_EVENTS = 1000


def _one_statement_possible() -> bool:
    """Postgres, outside any transaction, with the task queue in the same database."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and type(task_backends["default"]).__name__ == "DatabaseBackend"
    )


def _store_in_one_statement(
    request_fields: dict[str, Any], events: list[ParsedEvent]
) -> StoreResult:
    """The request, its events and their task rows in one autocommitted statement (one round trip).

    A duplicate dedupe key fails the whole statement (nothing is written); the caller then stores
    with a savepoint per event. The task rows are the ones django-tasks-db's `enqueue` writes;
    tests/system run real workers on them, so a change of its table shows up there.
    """
    from django_tasks_db.models import DBTaskResult, get_date_max

    from kommo_hub.tasks import process_inbound_event

    rows: list[Any] = []
    for parsed in events:
        handled = parsed.event_type in HANDLERS
        rows += [
            parsed.event_type[:64],
            parsed.dedupe_key,
            parsed.external_id,
            json.dumps(parsed.payload),
            EventStatus.RECEIVED if handled else EventStatus.IGNORED,
            "" if handled else "no handler for this event type",
        ]
    values = ", ".join(["(%s, %s, %s, %s::jsonb, %s, %s)"] * len(events))
    task = process_inbound_event
    # Only table names (from the models) and placeholders are interpolated.
    sql = f"""
        WITH req AS (
            INSERT INTO {InboundRequest._meta.db_table}
                (source, received_at, content_type, headers, body, remote_addr,
                 accepted, duplicates)
            VALUES (%s, now(), %s, %s::jsonb, %s, %s, %s, 0)
            RETURNING id
        ), ev AS (
            INSERT INTO {InboundEvent._meta.db_table}
                (request_id, source, event_type, dedupe_key, external_id, payload, status,
                 result, attempts, claim_token, last_error, created_at)
            SELECT req.id, %s, v.event_type, v.dedupe_key, v.external_id, v.payload, v.status,
                   v.result, 0, '', '', clock_timestamp()
            FROM req, (VALUES {values})
                AS v(event_type, dedupe_key, external_id, payload, status, result)
            RETURNING id, status
        ), tasks AS (
            INSERT INTO {DBTaskResult._meta.db_table}
                (id, status, enqueued_at, args_kwargs, priority, task_path, worker_ids,
                 queue_name, backend_name, run_after, exception_class_path, traceback)
            SELECT gen_random_uuid(), 'READY', now(),
                   jsonb_build_object('args', jsonb_build_array(ev.id), 'kwargs', '{{}}'::jsonb),
                   %s, %s, '[]'::jsonb, %s, 'default', %s, '', ''
            FROM ev WHERE ev.status = %s
        )
        SELECT id FROM req
    """  # noqa: S608
    params = [
        request_fields["source"],
        request_fields["content_type"],
        json.dumps(request_fields["headers"]),
        request_fields["body"],
        request_fields["remote_addr"],
        len(events),
        request_fields["source"],
        *rows,
        task.priority,
        task.module_path,
        task.queue_name,
        get_date_max(),
        EventStatus.RECEIVED,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (request_id,) = cursor.fetchone()
    return StoreResult(request_id=request_id, accepted=len(events), duplicates=0)
