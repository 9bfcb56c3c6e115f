"""n8n's duplicate guard, the hub's half: an execution claims an action before carrying it out.

The workflow POSTs {"idempotency_key", "action", "execution_id"} to `<callback_url>claim/` right
after its Switch and goes on only when told to. A claim is let through when the key has none yet,
when the last execution failed, when the same execution asks again (its first answer was lost),
or when the execution holding it has not reported back within N8N_CLAIM_TTL_SECONDS (n8n crashed
mid-way: that must not block the redelivery forever). Otherwise the duplicate stops: "in
progress" or "already done".

Atomic under concurrency: the action's row is locked first (Postgres; SQLite transactions take
the write lock at BEGIN), the claim row has a unique key, and taking an existing claim is one
conditional UPDATE, so of two n8n workers claiming at once exactly one proceeds.

n8n's callbacks settle the claim (claim_settle): done and handoff end it, failed frees it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from kommo_hub.models import ActionTarget, ClaimState, N8nClaim, OutboundAction
from kommo_hub.outbox.envelope import iso
from kommo_hub.outbox.services import N8N_ACTIONS

IN_PROGRESS = "in progress"
ALREADY_DONE = "already done"
FINISHED = (ClaimState.DONE, ClaimState.HANDOFF)
# The claims kept on the action's history (duplicates could otherwise grow it without end).
HISTORY_LIMIT = 50


class UnknownAction(Exception):
    """No n8n action has this idempotency key: a forged or stale envelope, never carried out."""


def _text_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


class ClaimRequest(BaseModel):
    """What the workflow posts to `<callback_url>claim/`."""

    model_config = ConfigDict(extra="ignore")

    idempotency_key: str = Field(min_length=1, max_length=255)
    # n8n's `$execution.id` (a number in n8n 1.x, sent as text or number).
    execution_id: Annotated[str, BeforeValidator(_text_id)] = Field(min_length=1, max_length=64)
    action: Literal[N8N_ACTIONS] | None = None  # type: ignore[valid-type]


def claim_request_parse(data: Any) -> ClaimRequest:
    """The claim body, or ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with idempotency_key, action and execution_id")
    try:
        return ClaimRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ValueError(problems) from exc


@dataclass(frozen=True)
class ClaimResult:
    proceed: bool
    reason: str = ""  # why not: IN_PROGRESS or ALREADY_DONE
    attempts: int = 0  # executions let through for this key, this one included


def n8n_action_claim(
    *, idempotency_key: str, execution_id: str, action: str = "", now: datetime | None = None
) -> ClaimResult:
    """Whether the n8n execution `execution_id` may carry out the action now (see module doc)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            OutboundAction.objects.select_for_update()
            .filter(idempotency_key=idempotency_key, target=ActionTarget.N8N)
            .first()
        )
        if row is None:
            raise UnknownAction(f"no n8n action has the idempotency key {idempotency_key!r}")
        result = _claim(row, execution_id=execution_id, now=now)
        _history(row, now=now, execution_id=execution_id, action=action, result=result)
    return result


def _claim(row: OutboundAction, *, execution_id: str, now: datetime) -> ClaimResult:
    key = row.idempotency_key
    finished = row.callback_status in FINISHED  # reported before claims existed, or lost
    try:
        with transaction.atomic():
            claim = N8nClaim.objects.create(
                action=row,
                idempotency_key=key,
                state=ClaimState.DONE if finished else ClaimState.STARTED,
                execution_id=execution_id,
                attempts=0 if finished else 1,
                claimed_at=now,
            )
        if finished:
            return ClaimResult(proceed=False, reason=ALREADY_DONE)
        return ClaimResult(proceed=True, attempts=1)
    except IntegrityError:
        pass  # claimed before: take it over only if it is free
    expired = now - timedelta(seconds=settings.N8N_CLAIM_TTL_SECONDS)
    free = Q(state=ClaimState.FAILED) | Q(state=ClaimState.STARTED, claimed_at__lte=expired)
    if execution_id:
        same = Q(state=ClaimState.STARTED, execution_id=execution_id)
        if N8nClaim.objects.filter(same, idempotency_key=key).exists():
            attempts = N8nClaim.objects.filter(idempotency_key=key).values_list(
                "attempts", flat=True
            )[0]
            return ClaimResult(proceed=True, attempts=attempts)
    taken = N8nClaim.objects.filter(free, idempotency_key=key).update(
        state=ClaimState.STARTED,
        execution_id=execution_id,
        claimed_at=now,
        attempts=F("attempts") + 1,
        updated_at=now,
    )
    claim = N8nClaim.objects.get(idempotency_key=key)
    if taken:
        return ClaimResult(proceed=True, attempts=claim.attempts)
    reason = ALREADY_DONE if claim.state in FINISHED else IN_PROGRESS
    return ClaimResult(proceed=False, reason=reason, attempts=claim.attempts)


def _history(
    row: OutboundAction, *, now: datetime, execution_id: str, action: str, result: ClaimResult
) -> None:
    entry: dict[str, Any] = {
        "at": iso(now),
        "execution_id": execution_id,
        "proceed": result.proceed,
    }
    if action:
        entry["action"] = action
    if result.reason:
        entry["reason"] = result.reason
    claims = [*row.result.get("claims", []), entry][-HISTORY_LIMIT:]
    OutboundAction.objects.filter(pk=row.pk).update(result={**row.result, "claims": claims})
    row.result = {**row.result, "claims": claims}


def claim_settle(
    *, action: OutboundAction, status: str, execution_id: str | None, now: datetime
) -> str:
    """n8n reported `status` for the action (call with the action's row locked). Returns the
    claim's state now. done and handoff end the claim whichever execution reports them (a late
    done wins); failed frees it only for the execution that holds it, so a stale failure never
    lets a second execution in next to a running one."""
    claim = N8nClaim.objects.filter(idempotency_key=action.idempotency_key).first()
    if claim is None:
        state = {"done": ClaimState.DONE, "handoff": ClaimState.HANDOFF}.get(
            status, ClaimState.FAILED
        )
        N8nClaim.objects.create(
            action=action,
            idempotency_key=action.idempotency_key,
            state=state,
            execution_id=execution_id or "",
            claimed_at=now,
        )
        return str(state)
    if status in ("done", "handoff"):
        if claim.state != ClaimState.DONE:  # done is never downgraded to handoff
            claim.state = ClaimState.DONE if status == "done" else ClaimState.HANDOFF
            claim.save(update_fields=["state", "updated_at"])
        return str(claim.state)
    if claim.state == ClaimState.STARTED and claim_held_by(claim, execution_id):
        claim.state = ClaimState.FAILED
        claim.save(update_fields=["state", "updated_at"])
    return str(claim.state)


def claim_held_by(claim: N8nClaim, execution_id: str | None) -> bool:
    """Whether a report from `execution_id` speaks for the claim's current execution (a report
    without an execution id is taken to: workflows that do not send it)."""
    return not execution_id or not claim.execution_id or claim.execution_id == execution_id


def claim_for(*, idempotency_key: str) -> N8nClaim | None:
    return N8nClaim.objects.filter(idempotency_key=idempotency_key).first()
