"""Delivering one outbound action: claim, call n8n or Kommo, classify the answer, record it.

2xx → done. 408, 429, 5xx and network errors → retried with backoff, then dead. Other 4xx →
dead at once, response kept. Kommo 401/403 → every Kommo write is held and an alert raised.
A `reply` whose conversation is paused when its turn comes is skipped (terminal, never sent).
An action that waits for another (`depends_on`) is held until that one is done; when an action
is done, what waits for it is released in the same transaction.
"""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kommo_hub.clients.http import HttpResult
from kommo_hub.clients.kommo import kommo_configured, kommo_request
from kommo_hub.clients.n8n import n8n_configured, n8n_post_action
from kommo_hub.flows.conversations import (
    REPLY,
    conversation_for_action,
    reply_envelope,
    reply_skip_reason,
)
from kommo_hub.leasing import backoff_delay, claim_row
from kommo_hub.models import ActionStatus, ActionTarget, Alert, Lead, OutboundAction
from kommo_hub.outbox.envelope import envelope_for_attempt
from kommo_hub.outbox.kommo_ops import Sent, operation_send
from kommo_hub.outbox.services import actions_requeue, dependents_release, waiting_reason

logger = logging.getLogger("kommo_hub.outbox")

WAITING = [ActionStatus.PENDING, ActionStatus.FAILED]
RETRYABLE = {408, 425, 429}
KOMMO_STOP = {401: Alert.Kind.KOMMO_UNAUTHORIZED, 403: Alert.Kind.KOMMO_BLOCKED}
NOT_CONFIGURED = "not configured"


def kommo_stopped() -> bool:
    return Alert.objects.filter(active=True, kind__in=KOMMO_STOP.values()).exists()


def hold_reason(target: str) -> str:
    """Why an action for `target` cannot be sent now ("" when it can)."""
    if target == ActionTarget.N8N:
        return "" if n8n_configured() else f"n8n {NOT_CONFIGURED}"
    if not kommo_configured():
        return f"Kommo {NOT_CONFIGURED}"
    if kommo_stopped():
        return "Kommo writes stopped: resolve the Kommo alert to release"
    return ""


def dependency_hold_reason(action: OutboundAction) -> str:
    """Why `action` must wait for the action it depends on ("" when that one is done)."""
    if action.depends_on_id is None:
        return ""
    predecessor = (
        OutboundAction.objects.filter(pk=action.depends_on_id).values("status", "action").first()
    )
    if predecessor is None or predecessor["status"] == ActionStatus.DONE:
        return ""
    return waiting_reason(
        pk=action.depends_on_id,
        action=predecessor["action"],
        dead=predecessor["status"] == ActionStatus.DEAD,
    )


def action_deliver(*, action_id: int) -> str:
    token = claim_row(
        OutboundAction, pk=action_id, waiting=WAITING, working=ActionStatus.DELIVERING
    )
    if token is None:
        return "not claimed"
    action = OutboundAction.objects.get(pk=action_id)
    log = {
        "action_id": action.pk,
        "target": action.target,
        "action": action.action,
        "attempt": action.attempts,
    }
    if action.attempts > settings.ACTION_MAX_ATTEMPTS:
        # Only a worker dying mid-send every time gets here: stop claiming it forever.
        error = f"worker lost {action.attempts - 1} times while delivering"
        _dead_letter(action, token, {"last_error": error})
        logger.error("action dead: %s", error, extra=log)
        return ActionStatus.DEAD
    skip = reply_skip_reason(action) if action.target == ActionTarget.N8N else ""
    if skip:
        # Terminal: e.g. the conversation was paused after the reply was scheduled.
        _record(action, token, status=ActionStatus.SKIPPED, held_reason=skip, attempts_used=False)
        logger.info("action %s", skip, extra=log)
        return ActionStatus.SKIPPED
    reason = dependency_hold_reason(action)
    if reason:
        _record(action, token, status=ActionStatus.HELD, held_reason=reason, attempts_used=False)
        logger.info("action held: %s", reason, extra=log)
        # The predecessor may have finished (and released its held dependents) in between.
        if not dependency_hold_reason(action):
            actions_requeue(
                actions=OutboundAction.objects.filter(pk=action.pk, status=ActionStatus.HELD),
                reset_attempts=False,
            )
        return "held"
    reason = hold_reason(action.target)
    if reason:
        _record(action, token, status=ActionStatus.HELD, held_reason=reason, attempts_used=False)
        logger.info("action held: %s", reason, extra=log)
        return "held"
    try:
        sent = _send(action)
    except Exception as exc:  # noqa: BLE001 - a bad URL or payload must not strand it "delivering"
        sent = Sent(HttpResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:500]))
    if sent.hold:
        _record(action, token, status=ActionStatus.HELD, held_reason=sent.hold, attempts_used=False)
        logger.info("action held: %s", sent.hold, extra=log)
        return "held"
    status = _classify(action, sent)
    logger.info("action %s", status, extra={**log, "http_status": sent.result.status_code})
    return status


def _send(action: OutboundAction) -> Sent:
    payload = action.payload
    if action.target == ActionTarget.N8N:
        return Sent(n8n_post_action(envelope=_n8n_envelope(action)))
    if payload.get("operation"):
        return operation_send(action)
    return Sent(
        kommo_request(method=payload["method"], path=payload["path"], json=payload.get("json"))
    )


def _n8n_envelope(action: OutboundAction) -> dict[str, Any]:
    """Built now: a reply from its burst; any action whose lead has a conversation gets that
    conversation's block (bot state and the WhatsApp window as they are now)."""
    lead = None
    if action.lead_id is not None:
        lead = Lead.objects.select_related("contact").filter(pk=action.lead_id).first()
    if action.action == REPLY:
        return reply_envelope(action, lead=lead)
    conversation = conversation_for_action(action, lead)
    if conversation is None:
        return envelope_for_attempt(action.payload, lead=lead)
    from botcontrol.services import bot_is_active_db

    return envelope_for_attempt(
        action.payload,
        lead=lead,
        conversation=conversation,
        bot_active=bot_is_active_db(conversation_id=conversation.pk),
    )


def _classify(action: OutboundAction, sent: Sent) -> str:
    token = action.claim_token
    result = sent.result
    code = result.status_code
    response: dict[str, Any] = {
        "last_status_code": code,
        "last_response": result.excerpt,
        "last_error": result.error,
    }
    if result.ok and not sent.failure:
        try:
            with transaction.atomic():
                if _record(
                    action, token, status=ActionStatus.DONE, delivered_at=timezone.now(), **response
                ):
                    if sent.on_done is not None:
                        sent.on_done()
                    dependents_release(action=action)
            return ActionStatus.DONE
        except Exception as exc:
            logger.exception("recording the outcome of action #%s failed", action.pk)
            error = f"recording the outcome failed: {type(exc).__name__}: {exc}"
            response["last_error"] = error[:500]
            return _retry_or_dead(action, token, result, response)
    if sent.failure == "dead":
        _dead_letter(action, token, response)
        return ActionStatus.DEAD
    if sent.failure == "retry":
        return _retry_or_dead(action, token, result, response)
    if action.target == ActionTarget.KOMMO and code in KOMMO_STOP:
        with transaction.atomic():
            _record(
                action,
                token,
                status=ActionStatus.HELD,
                held_reason=f"Kommo answered {code}: writes stopped until the alert is resolved",
                attempts_used=False,
                **response,
            )
            if not Alert.objects.filter(active=True, kind=KOMMO_STOP[code]).exists():
                Alert.objects.create(
                    kind=KOMMO_STOP[code],
                    message=f"Kommo answered {code} to action #{action.pk}: {result.excerpt[:300]}",
                )
        return ActionStatus.HELD
    retryable = code is None or code in RETRYABLE or code >= 500
    if retryable:
        return _retry_or_dead(action, token, result, response)
    _dead_letter(action, token, response)
    return ActionStatus.DEAD


def _retry_or_dead(
    action: OutboundAction, token: str, result: HttpResult, response: dict[str, Any]
) -> str:
    if action.attempts < settings.ACTION_MAX_ATTEMPTS:
        delay = backoff_delay(action.attempts)
        if result.retry_after_seconds is not None:
            delay = max(delay, timedelta(seconds=min(result.retry_after_seconds, 3600)))
        _record(
            action,
            token,
            status=ActionStatus.FAILED,
            next_attempt_at=timezone.now() + delay,
            **response,
        )
        return ActionStatus.FAILED
    _dead_letter(action, token, response)
    return ActionStatus.DEAD


def _dead_letter(action: OutboundAction, token: str, response: dict[str, Any]) -> None:
    with transaction.atomic():
        _record(action, token, status=ActionStatus.DEAD, **response)
        OutboundAction.objects.filter(depends_on=action, status=ActionStatus.HELD).update(
            held_reason=waiting_reason(pk=action.pk, action=action.action, dead=True)
        )
        Alert.objects.create(
            kind=Alert.Kind.DEAD_LETTER,
            message=(
                f"{action.target} action #{action.pk} ({action.action}) dead after "
                f"{action.attempts} attempt(s): HTTP {response.get('last_status_code')} "
                f"{str(response.get('last_error') or response.get('last_response', ''))[:300]}"
            ),
        )


def _record(
    action: OutboundAction, token: str, *, status: str, attempts_used: bool = True, **fields: Any
) -> int:
    """Store the outcome if this worker still holds the claim; returns the rows updated (0/1)."""
    values: dict[str, Any] = {"status": status, "locked_until": None, **fields}
    if status != ActionStatus.HELD:
        values.setdefault("held_reason", "")
    if not attempts_used:
        values["attempts"] = max(0, action.attempts - 1)
    return OutboundAction.objects.filter(pk=action.pk, claim_token=token).update(**values)
