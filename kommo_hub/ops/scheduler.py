"""One scheduler tick: each due job runs in exactly one process, however many schedulers run.

The winner of a (job, tick) is whoever inserts its SchedulerRun row first (a unique key).
"""

import logging
import time

from django.db import IntegrityError, transaction

from kommo_hub.models import SchedulerRun
from kommo_hub.ops.jobs import JOBS

logger = logging.getLogger("kommo_hub.scheduler")


def scheduler_tick(*, now: float | None = None, runner: str = "") -> dict[str, int]:
    now = time.time() if now is None else now
    ran: dict[str, int] = {}
    for name, (every, job) in JOBS.items():
        tick = int(now // every)
        try:
            with transaction.atomic():
                SchedulerRun.objects.create(job=name, tick=tick, ran_by=runner[:128])
        except IntegrityError:
            continue
        try:
            ran[name] = job()
        except Exception:  # one failing job must not stop the others; it runs again next tick
            logger.exception("scheduled job failed", extra={"job": name})
    if any(ran.values()):
        logger.info("scheduler tick", extra={"jobs": ran})
    return ran
