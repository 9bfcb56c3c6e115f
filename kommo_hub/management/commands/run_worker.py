"""A task worker (django-tasks-db) that also reports a heartbeat for /readyz."""

import os
import socket
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from kommo_hub.ops.heartbeat import heartbeat_start

# How long a worker waits before polling again when the database is unreachable.
DATABASE_RETRY_SECONDS = 1.0


class Command(BaseCommand):
    help = "Run one background task worker (database task backend)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=0.5, help="seconds between polls when idle"
        )
        parser.add_argument("--batch", action="store_true", help="exit when the queue is empty")
        parser.add_argument("--worker-id", default="", help="unique id (default: host-pid-random)")

    def handle(
        self, *args: Any, interval: float, batch: bool, worker_id: str, **options: Any
    ) -> None:
        if settings.TASKS_BACKEND != "database":
            raise CommandError(
                f"TASKS_BACKEND={settings.TASKS_BACKEND}: tasks run without a worker"
            )
        worker_id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{get_random_string(6)}"
        stop = heartbeat_start(worker_id=worker_id)
        worker = Worker(
            queue_names=["*"],
            interval=interval,
            batch=batch,
            backend_name="default",
            startup_delay=not batch,
            max_tasks=None,
            worker_id=worker_id[:64],
            excluded_queue_names=[],
        )
        worker.configure_signals()
        try:
            while True:
                try:
                    worker.run()
                    return
                except DatabaseError as exc:
                    # The database restarted or failed over: the worker waits for it instead of
                    # exiting (the task it was running is retried by the hub's own rows).
                    self.stderr.write(
                        f"task worker waiting, database unavailable: {type(exc).__name__}"
                    )
                    connections.close_all()
                    if not worker.running:
                        return
                    time.sleep(DATABASE_RETRY_SECONDS)
        finally:
            stop.set()
