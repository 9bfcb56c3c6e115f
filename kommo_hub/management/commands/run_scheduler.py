"""The periodic scheduler: safe to run on several machines (one winner per job and tick)."""

import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from kommo_hub.ops.scheduler import scheduler_tick


class Command(BaseCommand):
    help = "Run the periodic jobs (sweeps, releases, pruning) until stopped."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="run one tick and exit")

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        runner = f"{socket.gethostname()[:60]}-{os.getpid()}"
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop.is_set():
            try:
                scheduler_tick(runner=runner)
            except DatabaseError as exc:
                self.stderr.write(
                    f"scheduler tick skipped, database unavailable: {type(exc).__name__}"
                )
            finally:
                close_old_connections()
            if once:
                return
            stop.wait(settings.SCHEDULER_TICK_SECONDS)
