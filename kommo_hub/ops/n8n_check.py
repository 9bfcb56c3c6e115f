"""`manage.py n8n_check`: is the n8n workflow at N8N_WEBHOOK_URL the hub's, and does it answer?

Probes that message nobody: a wrong and a missing secret must get 403 (the webhook's header
auth), an unknown action 422 (the Switch's fallback), and the hub's own claim URL (as n8n reaches
it: HUB_PUBLIC_URL and N8N_CALLBACK_SECRET) 404 for a key it does not know. With `send_to`, one
real `proactive_message` goes through the outbox to that phone and the check waits for n8n's
callback: the whole round trip (AI, WhatsApp, claim, callback).
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from kommo_hub.clients.n8n import SECRET_HEADER, n8n_configured
from kommo_hub.intake.normalize import normalize_phone
from kommo_hub.logging import mask_phone
from kommo_hub.models import ActionTarget, InboundEvent, OutboundAction
from kommo_hub.outbox.envelope import callback_url, iso

CHECK_PREFIX = "n8n-check"
TEST_MESSAGE_HINT = (
    "Mensagem de teste do Kommo Hub (manage.py n8n_check): diga em uma frase curta que a "
    "integração com o n8n está funcionando. Não faça perguntas."
)


@dataclass(frozen=True)
class Check:
    name: str
    expected: str
    got: str
    ok: bool
    hint: str = ""


NOT_FOUND_HINT = (
    "is the workflow active, and N8N_WEBHOOK_URL its production URL (/webhook/, not "
    "/webhook-test/)?"
)


class NotConfigured(Exception):
    pass


def _probe_envelope(action: str) -> dict[str, Any]:
    key = f"{CHECK_PREFIX}:{action}:{secrets.token_hex(6)}"
    envelope: dict[str, Any] = {"action": action, "idempotency_key": key}
    envelope["sent_at"] = iso(timezone.now())
    url = callback_url()
    if url:
        envelope["callback_url"] = url
    return envelope


def _post(url: str, *, json: dict[str, Any], headers: dict[str, str]) -> tuple[int | None, str]:
    try:
        with httpx.Client(timeout=settings.N8N_TIMEOUT_SECONDS) as client:
            response = client.post(url, json=json, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200]
    return response.status_code, response.text[:200]


def _status_check(name: str, expected: int, got: tuple[int | None, str]) -> Check:
    code, text = got
    hint = "" if code == expected else text
    if code == 404 and expected != 404:
        hint = NOT_FOUND_HINT
    got_text = str(code) if code is not None else "no answer"
    return Check(name, str(expected), got_text, code == expected, hint)


def _probes() -> list[Check]:
    url = settings.N8N_WEBHOOK_URL
    good = {SECRET_HEADER: settings.N8N_WEBHOOK_SECRET}
    wrong = {SECRET_HEADER: f"wrong-{secrets.token_hex(8)}"}
    checks = [
        _status_check(
            "a wrong secret is refused",
            403,
            _post(url, json=_probe_envelope("reply"), headers=wrong),
        ),
        _status_check(
            "a missing secret is refused",
            403,
            _post(url, json=_probe_envelope("reply"), headers={}),
        ),
        _status_check(
            "an unknown action is refused",
            422,
            _post(url, json=_probe_envelope("n8n_check_ping"), headers=good),
        ),
    ]
    url = callback_url()
    if not url:
        checks.append(
            Check("the hub's claim URL answers", "404", "N8N_CALLBACK_SECRET is empty", False)
        )
    else:
        claim = {"idempotency_key": f"{CHECK_PREFIX}:unknown", "execution_id": "n8n_check"}
        checks.append(
            _status_check(
                "the hub's claim URL answers (unknown key)",
                404,
                _post(f"{url}claim/", json=claim, headers={}),
            )
        )
    return checks


def _round_trip(phone: str, *, wait_seconds: float, sleep: Callable[[float], None]) -> Check:
    from kommo_hub.outbox.delivery import action_deliver
    from kommo_hub.outbox.services import action_enqueue

    name = f"proactive_message to {mask_phone(phone)}"
    key = f"{CHECK_PREFIX}:proactive_message:{timezone.now():%Y%m%dT%H%M%S}:{secrets.token_hex(3)}"
    payload = {
        "action": "proactive_message",
        "idempotency_key": key,
        "lead": {"name": "Teste n8n_check", "phone": phone, "source": "n8n_check"},
        "area": {
            "slug": "n8n-check",
            "name": "n8n_check",
            "first_message_hint": TEST_MESSAGE_HINT,
        },
    }
    action, _created = action_enqueue(
        target=ActionTarget.N8N, action="proactive_message", idempotency_key=key, payload=payload
    )
    action_deliver(action_id=action.pk)  # now, here (a worker taking it first is fine too)
    deadline = time.monotonic() + wait_seconds
    while True:
        row = OutboundAction.objects.get(pk=action.pk)
        event = (
            InboundEvent.objects.filter(event_type="n8n.callback", external_id=key[:128])
            .order_by("pk")
            .last()
        )
        if event is not None:
            status = str(event.payload.get("status", ""))
            detail = str(event.payload.get("error") or event.payload.get("reply_text") or "")
            ok = status == "done"
            return Check(name, "callback done", f"callback {status}", ok, detail[:200])
        if row.status in ("dead", "held") or time.monotonic() >= deadline:
            got = f"action {row.status}"
            if row.last_status_code:
                got += f", HTTP {row.last_status_code}"
            hint = row.held_reason or row.last_error or row.last_response[:200]
            if row.status == "done":
                hint = (
                    f"n8n accepted it but no callback came within {wait_seconds:.0f} s: can n8n "
                    f"reach {settings.HUB_PUBLIC_URL}?"
                )
            return Check(name, "callback done", got, False, hint)
        sleep(1.0)


def n8n_check_run(
    *,
    send_to: str = "",
    wait_seconds: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Check]:
    """Run the probes (and, with `send_to`, the round trip); raises NotConfigured first."""
    if not n8n_configured():
        raise NotConfigured("set N8N_WEBHOOK_URL and N8N_WEBHOOK_SECRET in .env first")
    phone = ""
    if send_to:
        phone = normalize_phone(send_to).value
        if not phone:
            raise NotConfigured(f"--send-to {send_to!r} is not a valid phone number")
    checks = _probes()
    if phone:
        checks.append(_round_trip(phone, wait_seconds=wait_seconds, sleep=sleep))
    return checks
