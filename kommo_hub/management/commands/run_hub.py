"""The whole hub in one supervised process group: web server, task worker(s), scheduler.

Children that die are restarted; Ctrl-C or SIGTERM stops them all cleanly.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from kommo_hub.models import InboundEvent  # noqa: F401  (fail fast if the app is not migrated)

STOP_GRACE_SECONDS = 10


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # Its own process group: a terminal's Ctrl-C reaches only run_hub, which then asks each
        # child once to stop. (Given SIGINT and then our SIGTERM, a task worker takes the second
        # signal as "force" and abandons the task it is running.)
        self.process = subprocess.Popen(self.argv, process_group=0)
        self.started_at = time.monotonic()


class Command(BaseCommand):
    help = "Run the web server, the task worker(s) and the scheduler together."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HUB_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2"))
        )
        parser.add_argument(
            "--task-workers", type=int, default=int(os.environ.get("TASK_WORKERS", "0"))
        )
        parser.add_argument("--no-scheduler", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = [
            Child(
                "web",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "kommo_hub.wsgi:application",
                    "--bind",
                    f"{opts['host']}:{opts['port']}",
                    "--workers",
                    str(opts["web_workers"]),
                    "--threads",
                    "4",
                    "--timeout",
                    "30",
                    "--graceful-timeout",
                    str(STOP_GRACE_SECONDS),
                    # One control socket per install: gunicorn's default (~/.gunicorn/gunicorn.ctl)
                    # is shared by every hub of the user, and each one unlinks the others'.
                    "--control-socket",
                    str(settings.VAR_DIR / "gunicorn.ctl"),
                ],
            )
        ]
        if settings.TASKS_BACKEND == "database":
            sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
            count = opts["task_workers"] or (1 if sqlite else 2)
            children += [Child(f"worker-{i + 1}", [*manage, "run_worker"]) for i in range(count)]
        if not opts["no_scheduler"]:
            children.append(Child("scheduler", [*manage, "run_scheduler"]))

        stopping = False

        def _stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        for child in children:
            child.start()
        base = f"http://{opts['host']}:{opts['port']}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Kommo Hub running: admin at {base}/admin/  (health: {base}/readyz)"
            )
        )
        self.stdout.write(
            f"  processes: {', '.join(c.name for c in children)}. Ctrl-C stops them all."
        )
        while not stopping:
            time.sleep(0.5)
            for child in children:
                if stopping or child.process is None or child.process.poll() is None:
                    continue
                code = child.process.returncode
                delay = (
                    min(30, 2**child.restarts) if time.monotonic() - child.started_at < 60 else 1
                )
                self.stderr.write(f"{child.name} exited with {code}; restarting in {delay}s")
                time.sleep(delay)
                child.restarts += 1
                child.start()
        self.stdout.write("Stopping…")
        for child in children:
            if child.process and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.stdout.write("Stopped.")
