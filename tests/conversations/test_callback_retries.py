"""n8n's `failed` callback with `retryable`: the same action (same idempotency key) goes to n8n
again with the outbox's backoff until its attempts run out, then it is a dead letter with an
alert. A non-retryable failure only alerts. done wins over failed, in either order. Every step
also moves n8n's claim (the duplicate guard), so the redelivery is let through and a duplicate
after done is not."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from kommo_hub.models import (
    ActionStatus,
    Alert,
    ClaimState,
    EventStatus,
    InboundEvent,
    N8nClaim,
    OutboundAction,
)
from tests.conversations.support import (
    at,
    later,
    message_hook,
    n8n_bodies,
    send_callback,
    send_hook,
    tick,
)
from tests.flows.fakes import FakeKommo
from tests.intake.wire import JSON, N8N_URL, post
from tests.outbox.support import LocalHttpServer, committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

M1 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
TIMEOUT = "OpenAI: 504 Gateway Timeout"


@pytest.fixture
def replied(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> OutboundAction:
    """A customer wrote and the hub delivered the reply to n8n at +4 s (attempt 1)."""
    send_hook(client, message_hook(M1, "Quanto custa o plano anual?"))
    tick(later(4))
    return OutboundAction.objects.get(action="reply", status=ActionStatus.DONE)


def claim(client: Client, action: OutboundAction, execution_id: str) -> dict[str, Any]:
    body = {
        "idempotency_key": action.idempotency_key,
        "action": "reply",
        "execution_id": execution_id,
    }
    with committed():
        response = post(client, f"{N8N_URL}claim/", json.dumps(body), content_type=JSON)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def failed(action: OutboundAction, execution_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "idempotency_key": action.idempotency_key,
        "status": "failed",
        "execution_id": execution_id,
        "error": TIMEOUT,
        "retryable": True,
        **fields,
    }


def done(action: OutboundAction, execution_id: str) -> dict[str, Any]:
    return {
        "idempotency_key": action.idempotency_key,
        "status": "done",
        "execution_id": execution_id,
        "reply_text": "O plano anual custa R$ 1.200.",
    }


def last_result() -> str:
    return InboundEvent.objects.filter(event_type="n8n.callback").latest("pk").result


def replies_sent(n8n: LocalHttpServer) -> list[str]:
    return [body["idempotency_key"] for body in n8n_bodies(n8n, "reply")]


def test_a_retryable_failure_redelivers_the_same_action_after_the_backoff_and_the_claim_lets_it_in(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    assert claim(client, replied, "101") == {"proceed": True}
    with at(later(9)):
        assert send_callback(client, failed(replied, "101")) == {"accepted": 1, "duplicates": 0}

    replied.refresh_from_db()
    assert replied.next_attempt_at is not None
    wait = (replied.next_attempt_at - later(9)).total_seconds()
    assert 5 <= wait <= 10  # the outbox's backoff after one attempt (base 10 s, half random)
    assert (replied.status, replied.attempts, replied.callback_status, replied.last_error) == (
        ActionStatus.FAILED,
        1,
        "failed",
        f"n8n: {TIMEOUT}",
    )
    assert last_result() == (
        f"callback failed recorded; redelivery 2 of 10 scheduled for "
        f"{replied.next_attempt_at.strftime('%Y-%m-%dT%H:%M:%S')}Z"
    )
    assert not Alert.objects.exists()  # a retry on its way is no alert
    assert N8nClaim.objects.get().state == ClaimState.FAILED

    tick(later(9 + wait - 1))  # not due yet
    assert len(replies_sent(n8n)) == 1
    tick(later(9 + wait))
    assert replies_sent(n8n) == [replied.idempotency_key] * 2
    replied.refresh_from_db()
    assert (replied.status, replied.attempts) == (ActionStatus.DONE, 2)

    assert claim(client, replied, "102") == {"proceed": True}
    with at(later(30)):
        send_callback(client, done(replied, "102"))
    replied.refresh_from_db()
    assert replied.callback_status == "done"
    claim_row = N8nClaim.objects.get()
    assert (claim_row.state, claim_row.execution_id, claim_row.attempts) == (
        ClaimState.DONE,
        "102",
        2,
    )
    assert claim(client, replied, "103") == {"proceed": False, "reason": "already done"}
    assert [c["status"] for c in replied.result["callbacks"]] == ["failed", "done"]


def test_a_retryable_failure_with_no_attempts_left_is_a_dead_letter_with_an_alert_and_no_resend(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer, settings: Any
) -> None:
    settings.ACTION_MAX_ATTEMPTS = 2
    claim(client, replied, "101")
    with at(later(9)):
        send_callback(client, failed(replied, "101"))
    tick(later(30))
    assert len(replies_sent(n8n)) == 2
    claim(client, replied, "102")

    with at(later(40)):
        send_callback(client, failed(replied, "102", error="OpenAI: 503 overloaded"))

    assert last_result() == "callback failed recorded; dead after 2 attempt(s); alert raised"
    replied.refresh_from_db()
    assert (replied.status, replied.attempts, replied.next_attempt_at, replied.last_error) == (
        ActionStatus.DEAD,
        2,
        None,
        "n8n: OpenAI: 503 overloaded",
    )
    alert = Alert.objects.get()
    assert (alert.kind, alert.message) == (
        Alert.Kind.N8N_FAILED,
        f"n8n could not carry out reply #{replied.pk} (lead #{replied.lead_id}) after 2 "
        "attempts; it is a dead letter now: OpenAI: 503 overloaded",
    )
    tick(later(4000))
    assert len(replies_sent(n8n)) == 2


@pytest.mark.parametrize("retryable", [False, None, "banana"])
def test_a_failure_not_marked_retryable_alerts_as_before_and_nothing_is_sent_again(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer, retryable: Any
) -> None:
    claim(client, replied, "101")
    body = failed(replied, "101", error="WhatsApp: (#131047) Re-engagement message")
    if retryable is None:
        del body["retryable"]
    else:
        body["retryable"] = retryable
    with at(later(9)):
        send_callback(client, body)

    assert last_result() == "callback failed recorded; alert raised"
    event = InboundEvent.objects.get(event_type="n8n.callback")
    assert event.status == EventStatus.PROCESSED
    replied.refresh_from_db()
    assert (replied.status, replied.next_attempt_at, replied.callback_status) == (
        ActionStatus.DONE,
        later(4),
        "failed",
    )
    assert Alert.objects.get().kind == Alert.Kind.N8N_FAILED
    tick(later(4000))
    assert len(replies_sent(n8n)) == 1


def test_retryable_given_as_text_is_understood(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    with at(later(9)):
        send_callback(client, failed(replied, "101", retryable="true"))
    replied.refresh_from_db()
    assert replied.status == ActionStatus.FAILED
    assert replied.result["callbacks"][-1]["retryable"] is True


def test_a_late_done_after_a_retryable_failure_wins_and_cancels_the_redelivery(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    claim(client, replied, "101")
    with at(later(9)):
        send_callback(client, failed(replied, "101"))

    with at(later(10)):
        send_callback(client, done(replied, "101"))

    assert last_result().startswith("callback done recorded; bot message #")
    assert last_result().endswith("stored; action done after all (was failed)")
    replied.refresh_from_db()
    assert (replied.status, replied.next_attempt_at, replied.callback_status) == (
        ActionStatus.DONE,
        None,
        "done",
    )
    assert N8nClaim.objects.get().state == ClaimState.DONE
    tick(later(4000))
    assert len(replies_sent(n8n)) == 1
    assert claim(client, replied, "102") == {"proceed": False, "reason": "already done"}


def test_a_late_done_after_the_dead_letter_makes_the_action_done(
    client: Client, replied: OutboundAction, settings: Any
) -> None:
    settings.ACTION_MAX_ATTEMPTS = 1
    with at(later(9)):
        send_callback(client, failed(replied, "101"))
    replied.refresh_from_db()
    assert replied.status == ActionStatus.DEAD

    with at(later(12)):
        send_callback(client, done(replied, "101"))
    replied.refresh_from_db()
    assert (replied.status, replied.callback_status) == (ActionStatus.DONE, "done")


def test_a_failure_after_done_changes_nothing_but_the_history(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    claim(client, replied, "101")
    with at(later(9)):
        send_callback(client, done(replied, "101"))
    with at(later(12)):
        send_callback(client, failed(replied, "101"))

    assert last_result() == "callback failed recorded; already done: ignored"
    replied.refresh_from_db()
    assert (replied.status, replied.callback_status, replied.callback_at, replied.last_error) == (
        ActionStatus.DONE,
        "done",
        later(9),
        "",
    )
    assert [c["status"] for c in replied.result["callbacks"]] == ["done", "failed"]
    assert N8nClaim.objects.get().state == ClaimState.DONE
    assert not Alert.objects.exists()
    tick(later(4000))
    assert len(replies_sent(n8n)) == 1


def test_a_failure_from_an_execution_that_lost_its_claim_to_a_newer_one_is_ignored(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer, settings: Any
) -> None:
    settings.N8N_CLAIM_TTL_SECONDS = 60
    claim(client, replied, "101")
    with at(later(120)):  # 101 looks crashed: a redelivery's execution takes over
        assert claim(client, replied, "102") == {"proceed": True}

    with at(later(125)):
        send_callback(client, failed(replied, "101"))

    assert last_result() == "callback failed recorded; from an earlier execution: ignored"
    replied.refresh_from_db()
    assert (replied.status, replied.callback_status) == (ActionStatus.DONE, "")
    claim_row = N8nClaim.objects.get()
    assert (claim_row.state, claim_row.execution_id) == (ClaimState.STARTED, "102")
    assert not Alert.objects.exists()
    tick(later(4000))
    assert len(replies_sent(n8n)) == 1


def test_the_same_failure_delivered_twice_counts_once_but_each_execution_counts(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    with at(later(9)):
        assert send_callback(client, failed(replied, "101")) == {"accepted": 1, "duplicates": 0}
        assert send_callback(client, failed(replied, "101")) == {"accepted": 0, "duplicates": 1}
    replied.refresh_from_db()
    assert replied.next_attempt_at is not None
    tick(replied.next_attempt_at + timedelta(seconds=1))
    assert len(replies_sent(n8n)) == 2

    with at(later(60)):
        assert send_callback(client, failed(replied, "102")) == {"accepted": 1, "duplicates": 0}
    replied.refresh_from_db()
    assert (replied.status, replied.attempts) == (ActionStatus.FAILED, 2)
    assert [(c["status"], c["execution_id"]) for c in replied.result["callbacks"]] == [
        ("failed", "101"),
        ("failed", "102"),
    ]


def test_a_failure_reported_while_its_redelivery_is_in_flight_is_not_overwritten_by_it(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    """n8n answered the delivery only at the end of its workflow, after its failed callback was
    processed: the delivery's own outcome must not turn the scheduled redelivery into done."""
    from kommo_hub.outbox import delivery

    OutboundAction.objects.filter(pk=replied.pk).update(status=ActionStatus.PENDING)
    real_send = delivery._send

    def send_and_fail_meanwhile(action: OutboundAction) -> Any:
        sent = real_send(action)
        with at(later(10)):
            send_callback(client, failed(replied, "201"))
        return sent

    delivery._send = send_and_fail_meanwhile
    try:
        with at(later(9)), committed():
            delivery.action_deliver(action_id=replied.pk)
    finally:
        delivery._send = real_send

    replied.refresh_from_db()
    assert (replied.status, replied.attempts) == (ActionStatus.FAILED, 2)
    assert replied.next_attempt_at is not None
