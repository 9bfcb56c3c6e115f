import os
import socket
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from kommo_hub.models import WorkerHeartbeat


def heartbeat_beat(*, worker_id: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "last_seen": timezone.now(),
        },
    )


def heartbeat_start(*, worker_id: str) -> threading.Event:
    """Beat from a daemon thread (its own DB connection) until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                heartbeat_beat(worker_id=worker_id)
            except DatabaseError:
                pass  # the database is down: readiness shows the stale heartbeat
            finally:
                close_old_connections()
            stop.wait(settings.WORKER_HEARTBEAT_SECONDS)

    threading.Thread(target=loop, name="heartbeat", daemon=True).start()
    return stop
