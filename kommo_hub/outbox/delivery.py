"""Delivering one outbound action: claim, call n8n or Kommo, classify the answer, record it.

2xx → done. 408, 429, 5xx and network errors → retried with backoff, then dead. Other 4xx →
dead at once, response kept. Kommo 401/403 → every Kommo write is held and an alert raised.
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
from kommo_hub.leasing import backoff_delay, claim_row
from kommo_hub.models import ActionStatus, ActionTarget, Alert, OutboundAction
from kommo_hub.outbox.envelope import envelope_for_attempt

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
    reason = hold_reason(action.target)
    if reason:
        _record(action, token, status=ActionStatus.HELD, held_reason=reason, attempts_used=False)
        logger.info("action held: %s", reason, extra=log)
        return "held"
    try:
        result = _send(action)
    except Exception as exc:  # noqa: BLE001 - a bad URL or payload must not strand it "delivering"
        result = HttpResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:500])
    status = _classify(action, result)
    logger.info("action %s", status, extra={**log, "http_status": result.status_code})
    return status


def _send(action: OutboundAction) -> HttpResult:
    if action.target == ActionTarget.N8N:
        return n8n_post_action(envelope=envelope_for_attempt(action.payload))
    payload = action.payload
    return kommo_request(method=payload["method"], path=payload["path"], json=payload.get("json"))


def _classify(action: OutboundAction, result: HttpResult) -> str:
    token = action.claim_token
    code = result.status_code
    response: dict[str, Any] = {
        "last_status_code": code,
        "last_response": result.excerpt,
        "last_error": result.error,
    }
    if result.ok:
        _record(action, token, status=ActionStatus.DONE, delivered_at=timezone.now(), **response)
        return ActionStatus.DONE
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
    if retryable and action.attempts < settings.ACTION_MAX_ATTEMPTS:
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
) -> None:
    values: dict[str, Any] = {"status": status, "locked_until": None, **fields}
    if status != ActionStatus.HELD:
        values.setdefault("held_reason", "")
    if not attempts_used:
        values["attempts"] = max(0, action.attempts - 1)
    OutboundAction.objects.filter(pk=action.pk, claim_token=token).update(**values)
