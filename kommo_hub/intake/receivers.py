"""Webhook receivers: authenticate, parse in memory, store, answer. No remote calls here.

Answers follow ARCHITECTURE §4.1: 200 {"accepted", "duplicates"}, 403, 400 naming the problem,
413 over the size limit; never a 500 for any body.
"""

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kommo_hub.intake.brackets import TooManyFields, parse_bracket_form
from kommo_hub.intake.kommo import split_kommo_body
from kommo_hub.intake.leads import form_lead, split_rdstation_body
from kommo_hub.intake.normalize import normalize_email, normalize_phone
from kommo_hub.intake.parsed import BadPayload, ParsedEvent, content_hash, make_key
from kommo_hub.intake.store import inbound_request_store, safe_headers, storable_text
from kommo_hub.models import InboundEvent, Source
from kommo_hub.outbox.claims import UnknownAction, claim_request_parse, n8n_action_claim

logger = logging.getLogger("kommo_hub.intake")


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


# Senders (Kommo, RD Station, n8n) retry a 503; Retry-After tells them when.
RETRY_AFTER_SECONDS = 5


def _unavailable() -> JsonResponse:
    response = _error(503, "temporarily unavailable, retry later")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _secret_ok(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _read_body(request: HttpRequest) -> bytes:
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > settings.WEBHOOK_MAX_BODY_BYTES:
        raise RequestDataTooBig
    body = request.body
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        raise RequestDataTooBig
    return body


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"body is not UTF-8 (byte {exc.start})") from exc


def _is_json(request: HttpRequest, text: str) -> bool:
    return "json" in (request.content_type or "") or text.lstrip()[:1] in {"{", "["}


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(text: str) -> Any:
    # ValueError also covers integers over Python's 4300-digit limit; NaN / Infinity would not be
    # valid JSON in the database (SQLite's JSON_VALID check, Postgres jsonb).
    try:
        data = json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"invalid JSON: {exc}") from exc
    _require_storable(data)  # before anything hashes or keys on it (\ud800 cannot be encoded)
    return data


def _storage_problem(value: Any) -> str | None:
    """What no database column can hold: NUL characters (Postgres) and unpaired surrogates."""
    stack = [value]  # iterative: a body nested near the recursion limit must not raise
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "an unpaired surrogate"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _require_storable(value: Any) -> None:
    problem = _storage_problem(value)
    if problem:
        raise BadPayload(f"cannot store: the body holds {problem}")


def _check_storable(text: str, events: list[ParsedEvent]) -> None:
    for value in (text, *((e.event_type, e.dedupe_key, e.external_id, e.payload) for e in events)):
        _require_storable(value)


def _parse_form(text: str) -> dict[str, Any]:
    # Raw whitespace is never part of a url-encoded value (a real one arrives as '+' or %0A);
    # a trailing newline would otherwise end up in the last field (e.g. origin "waba\n").
    try:
        return parse_bracket_form(text.strip(), max_fields=settings.WEBHOOK_MAX_FIELDS)
    except TooManyFields as exc:
        raise BadPayload(str(exc)) from exc
    except ValueError as exc:
        raise BadPayload(f"invalid form body: {exc}") from exc


Parser = Callable[[HttpRequest, str], list[ParsedEvent]]


def _receive(request: HttpRequest, *, source: str, parse: Parser) -> JsonResponse:
    try:
        body = _read_body(request)
    except RequestDataTooBig:
        return _error(413, "body too large", limit_bytes=settings.WEBHOOK_MAX_BODY_BYTES)
    try:
        text = _decode(body)
        events = parse(request, text)
        _check_storable(text, events)
    except BadPayload as exc:
        logger.info("webhook rejected", extra={"source": source, "reason": str(exc)})
        return _error(400, str(exc))
    except Forbidden as exc:
        return _error(403, str(exc))
    except DatabaseError:  # a parser that reads (the forms' dedupe window)
        logger.exception("webhook not parsed: database unavailable", extra={"source": source})
        return _unavailable()
    try:
        result = inbound_request_store(
            source=source,
            body=text,
            content_type=storable_text(request.content_type or ""),
            headers=safe_headers(request.META),
            remote_addr=request.META.get("REMOTE_ADDR") or None,
            events=events,
        )
    except DatabaseError:
        logger.exception("webhook not stored: database unavailable", extra={"source": source})
        return _unavailable()
    logger.info(
        "webhook accepted",
        extra={
            "source": source,
            "request_id": result.request_id,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
        },
    )
    return JsonResponse({"accepted": result.accepted, "duplicates": result.duplicates})


class Forbidden(Exception):
    """The body is readable but comes from somewhere we do not accept (e.g. a foreign account)."""


# --- Kommo ------------------------------------------------------------------------------------


def _parse_kommo(request: HttpRequest, text: str) -> list[ParsedEvent]:
    data = _parse_json(text) if _is_json(request, text) else _parse_form(text)
    if not isinstance(data, dict):
        raise BadPayload("expected an object of entity[action][index] groups")
    account, events = split_kommo_body(data)
    expected_id = settings.KOMMO_ACCOUNT_ID
    expected_sub = settings.KOMMO_SUBDOMAIN
    if expected_id and account.get("id") != expected_id:
        raise Forbidden("webhook from a Kommo account other than the configured one")
    if expected_sub and account.get("subdomain", "").lower() != expected_sub.lower():
        raise Forbidden("webhook from a Kommo account other than the configured one")
    return events


@csrf_exempt
@require_POST
def kommo_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    if not _secret_ok(secret, settings.KOMMO_WEBHOOK_SECRET):
        return _error(403, "invalid secret")
    return _receive(request, source=Source.KOMMO, parse=_parse_kommo)


# --- RD Station ---------------------------------------------------------------------------------


def _parse_rdstation(request: HttpRequest, text: str) -> list[ParsedEvent]:
    return split_rdstation_body(_parse_json(text))


@csrf_exempt
@require_POST
def rdstation_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    if not _secret_ok(secret, settings.RDSTATION_WEBHOOK_SECRET):
        return _error(403, "invalid secret")
    return _receive(request, source=Source.RDSTATION, parse=_parse_rdstation)


# --- Website / generic forms -------------------------------------------------------------------


def _parse_forms(request: HttpRequest, text: str) -> list[ParsedEvent]:
    if _is_json(request, text):
        data = _parse_json(text)
        if not isinstance(data, dict):
            raise BadPayload("expected a JSON object with the lead's fields")
    else:
        data = _parse_form(text)
    if not data:
        raise BadPayload("empty form: expected fields such as name, phone, email")
    lead = form_lead(data)
    phone = normalize_phone(lead.phone)
    email = normalize_email(lead.email)
    if not lead.phone and not lead.email:
        raise BadPayload("a lead needs a phone or an e-mail")
    idem = request.headers.get("Idempotency-Key", "").strip()
    problem = _storage_problem(idem)
    if problem:
        raise BadPayload(f"cannot store: the Idempotency-Key header holds {problem}")
    if idem:
        key = make_key("forms", "idem", idem[:200])
    else:
        key = _form_window_key(
            lead.model_dump(), phone.value or phone.raw, email.value or email.raw
        )
    return [ParsedEvent("forms.lead", key, data, external_id=(idem or "")[:128])]


def _form_window_key(fields: dict[str, Any], phone: str, email: str) -> str:
    """Same normalized fields within the dedupe window of the first submission → its key."""
    fingerprint = content_hash({**fields, "phone": phone, "email": email})
    now = timezone.now()
    since = now - timedelta(seconds=settings.FORMS_DEDUPE_WINDOW_SECONDS)
    first = (
        InboundEvent.objects.filter(
            dedupe_key__startswith=make_key("forms", "hash", fingerprint, ""),
            created_at__gte=since,
        )
        .order_by("created_at")
        .values_list("dedupe_key", flat=True)
        .first()
    )
    return first or make_key("forms", "hash", fingerprint, int(now.timestamp()))


def _signature_ok(request: HttpRequest) -> bool:
    secret = settings.FORMS_SIGNING_SECRET
    if not secret:
        return True
    given = request.headers.get("X-Hub-Signature-256", "")
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
@require_POST
def forms_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    if not _secret_ok(secret, settings.FORMS_WEBHOOK_SECRET):
        return _error(403, "invalid secret")
    try:
        signed = _signature_ok(request)
    except RequestDataTooBig:
        return _error(413, "body too large", limit_bytes=settings.WEBHOOK_MAX_BODY_BYTES)
    if not signed:
        return _error(403, "invalid or missing X-Hub-Signature-256")
    return _receive(request, source=Source.FORMS, parse=_parse_forms)


# --- n8n callbacks and Supabase database webhooks (stored now; their flows handle them) ----------


def _json_object(text: str) -> dict[str, Any]:
    data = _parse_json(text)
    if not isinstance(data, dict):
        raise BadPayload("expected a JSON object")
    return data


def _parse_n8n(request: HttpRequest, text: str) -> list[ParsedEvent]:
    data = _json_object(text)
    key = str(data.get("idempotency_key") or "")
    status = str(data.get("status") or "")
    if not key or not status:
        raise BadPayload("'idempotency_key' and 'status' are required")
    # A redelivered action reports again from a new n8n execution: not a duplicate.
    execution = data.get("execution_id")
    execution = str(execution).strip()[:64] if isinstance(execution, str | int) else ""
    parts = (key, status, execution) if execution else (key, status)
    return [ParsedEvent("n8n.callback", make_key("n8n", *parts), data, external_id=key[:128])]


@csrf_exempt
@require_POST
def n8n_callback(request: HttpRequest, secret: str) -> JsonResponse:
    if not _secret_ok(secret, settings.N8N_CALLBACK_SECRET):
        return _error(403, "invalid secret")
    return _receive(request, source=Source.N8N, parse=_parse_n8n)


@csrf_exempt
@require_POST
def n8n_claim(request: HttpRequest, secret: str) -> JsonResponse:
    """n8n's duplicate guard (kommo_hub.outbox.claims): a synchronous answer, nothing queued.

    200 {"proceed": true} or {"proceed": false, "reason": "in progress" | "already done"};
    403 wrong secret, 400 bad body, 404 unknown key, all as {"detail": ...} with nothing written.
    """
    if not _secret_ok(secret, settings.N8N_CALLBACK_SECRET):
        return JsonResponse({"detail": "invalid secret"}, status=403)
    try:
        claim = claim_request_parse(_parse_json(_decode(_read_body(request))))
    except RequestDataTooBig:
        return JsonResponse({"detail": "body too large"}, status=413)
    except ValueError as exc:  # BadPayload too
        return JsonResponse({"detail": str(exc)}, status=400)
    try:
        result = n8n_action_claim(
            idempotency_key=claim.idempotency_key,
            execution_id=claim.execution_id,
            action=claim.action or "",
        )
    except UnknownAction as exc:
        return JsonResponse({"detail": str(exc)}, status=404)
    except DatabaseError:
        logger.exception("n8n claim not answered: database unavailable")
        response = JsonResponse({"detail": "temporarily unavailable, retry later"}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log = {"action": claim.action, "execution_id": claim.execution_id}
    logger.info("n8n claim %s", "granted" if result.proceed else result.reason, extra=log)
    if result.proceed:
        return JsonResponse({"proceed": True})
    return JsonResponse({"proceed": False, "reason": result.reason})


def _parse_supabase(request: HttpRequest, text: str) -> list[ParsedEvent]:
    data = _json_object(text)
    table, kind = str(data.get("table") or ""), str(data.get("type") or "")
    if not table or not kind:
        raise BadPayload("expected a Supabase database webhook with 'type' and 'table'")
    record = data.get("record") or data.get("old_record") or {}
    record = record if isinstance(record, dict) else {}
    ident, version = str(record.get("id") or ""), str(record.get("updated_at") or "")
    key = (
        make_key("supabase", table, kind, ident, version)
        if ident
        else make_key("supabase", table, kind, "sha256", content_hash(data))
    )
    return [
        ParsedEvent(f"supabase.{table}.{kind.lower()}"[:64], key, data, external_id=ident[:128])
    ]


@csrf_exempt
@require_POST
def supabase_webhook(request: HttpRequest, secret: str) -> JsonResponse:
    if not _secret_ok(secret, settings.SUPABASE_WEBHOOK_SECRET):
        return _error(403, "invalid secret")
    return _receive(request, source=Source.SUPABASE, parse=_parse_supabase)
