"""Liveness and readiness as JSON for load balancers and monitors."""

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from kommo_hub.models import (
    ActionStatus,
    EventStatus,
    InboundEvent,
    OutboundAction,
    WorkerHeartbeat,
)

PENDING_EVENTS = [EventStatus.RECEIVED, EventStatus.PROCESSING, EventStatus.FAILED]
PENDING_ACTIONS = [ActionStatus.PENDING, ActionStatus.DELIVERING, ActionStatus.FAILED]


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _age_seconds(moment: Any) -> float | None:
    return round((timezone.now() - moment).total_seconds(), 1) if moment else None


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
    try:
        probe = f"readyz:{time.time_ns()}"
        cache.set(probe, "1", 5)
        checks["cache"] = "ok" if cache.get(probe) == "1" else "error: value not read back"
    except Exception as exc:  # noqa: BLE001 - any cache backend error means "not ready", never a 500
        checks["cache"] = f"error: {type(exc).__name__}"
    ready &= checks["cache"] == "ok"
    events = InboundEvent.objects.filter(status__in=PENDING_EVENTS)
    actions = OutboundAction.objects.filter(status__in=PENDING_ACTIONS)
    oldest_event = events.order_by("created_at").values_list("created_at", flat=True).first()
    oldest_action = actions.order_by("created_at").values_list("created_at", flat=True).first()
    checks["backlog"] = {
        "events": events.count(),
        "actions": actions.count(),
        "held_actions": OutboundAction.objects.filter(status=ActionStatus.HELD).count(),
        "oldest_pending_event_age_s": _age_seconds(oldest_event),
        "oldest_pending_action_age_s": _age_seconds(oldest_action),
    }
    last_beat = (
        WorkerHeartbeat.objects.order_by("-last_seen").values_list("last_seen", flat=True).first()
    )
    beat_age = _age_seconds(last_beat)
    checks["worker"] = {"last_heartbeat_age_s": beat_age, "tasks_backend": settings.TASKS_BACKEND}
    degraded = False
    if settings.TASKS_BACKEND == "database":
        stale = beat_age is None or beat_age > 3 * settings.WORKER_HEARTBEAT_SECONDS + 5
        checks["worker"]["status"] = "stale" if stale else "ok"
        degraded = stale
    # Webhooks can still be accepted without workers: a stale worker degrades, it does not unready.
    status = "unavailable" if not ready else ("degraded" if degraded else "ok")
    return JsonResponse({"status": status, "checks": checks}, status=200 if ready else 503)
