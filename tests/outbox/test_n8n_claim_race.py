"""Two or more n8n workers claiming one action at the same moment, with real parallelism on
Postgres: threads, each with its own database connection, released together by a barrier, post
to the claim endpoint. Exactly one is let through, every time: for a new claim, for one freed by
a failed execution, and for one whose execution outlived the TTL."""

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from kommo_hub.models import ActionStatus, ClaimState, N8nClaim, OutboundAction
from tests.factories import OutboundActionFactory
from tests.intake.wire import JSON, N8N_URL, post

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUNDS = 15
WORKERS = 8


def race(key: str, round_: int) -> tuple[list[dict[str, Any]], list[str]]:
    barrier = threading.Barrier(WORKERS)
    answers: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            body = {
                "idempotency_key": key,
                "action": "reply",
                "execution_id": f"{round_}-{index}",
            }
            barrier.wait()
            response = post(Client(), f"{N8N_URL}claim/", json.dumps(body), content_type=JSON)
            with lock:
                answers.append({"status": response.status_code, **response.json()})
        except Exception as exc:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers, errors


def outcome(answers: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        "proceed" if a == {"status": 200, "proceed": True} else str(a.get("reason"))
        for a in answers
    )


@pytest.mark.parametrize("before", ["none", "failed", "expired"])
def test_of_parallel_claims_for_one_action_exactly_one_proceeds(before: str) -> None:
    for round_ in range(ROUNDS):
        action: OutboundAction = OutboundActionFactory(
            action="reply", status=ActionStatus.DONE, attempts=1
        )
        if before != "none":
            N8nClaim.objects.create(
                action=action,
                idempotency_key=action.idempotency_key,
                state=ClaimState.FAILED if before == "failed" else ClaimState.STARTED,
                execution_id="crashed",
                attempts=1,
                claimed_at=timezone.now() - timedelta(hours=1),
            )

        answers, errors = race(action.idempotency_key, round_)

        assert errors == []
        assert outcome(answers) == Counter({"proceed": 1, "in progress": WORKERS - 1}), round_
        claim = N8nClaim.objects.get(action=action)
        granted = [
            entry["execution_id"]
            for entry in OutboundAction.objects.get(pk=action.pk).result["claims"]
            if entry["proceed"]
        ]
        assert len(granted) == 1
        assert (claim.state, claim.execution_id, claim.attempts) == (
            ClaimState.STARTED,
            granted[0],
            1 if before == "none" else 2,
        )
        assert len(OutboundAction.objects.get(pk=action.pk).result["claims"]) == WORKERS
