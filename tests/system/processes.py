"""Starting the hub's real processes (gunicorn, task workers, scheduler, run_hub) for tests.

Every process runs in its own session (process group) with its output in a log file, so a test
can kill a whole group and show the logs when something goes wrong. `HubProcesses.close()` kills
whatever is still running; the `hub` fixture calls it even when the test fails.
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.conftest import SECRETS

ROOT = Path(__file__).resolve().parents[2]
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
MANAGE = str(ROOT / "manage.py")
KOMMO_WEBHOOK_PATH = f"/webhooks/kommo/{SECRETS['KOMMO_WEBHOOK_SECRET']}/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MARKER_VARIABLE = "KOMMO_HUB_SYSTEM_TEST_MARKER"

# Configuration a developer's shell may carry that must not leak into the processes under test.
_BLANKED = (
    "FORMS_SIGNING_SECRET",
    "N8N_WEBHOOK_URL",
    "N8N_WEBHOOK_SECRET",
    "KOMMO_SUBDOMAIN",
    "KOMMO_BASE_URL",
    "KOMMO_ACCOUNT_ID",
    "KOMMO_ACCESS_TOKEN",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "REDIS_URL",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database Django is connected to (the pytest test database)."""
    name = str(settings_dict["NAME"])
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{name}"
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(str(settings_dict.get("HOST") or "127.0.0.1"), safe="")
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(name, safe='')}"


def hub_env(*, database: str, var_dir: Path, **overrides: str | float) -> dict[str, str]:
    """The environment of a hub process: test secrets, nothing from .env, the database queue."""
    env = dict(os.environ)
    for name in _BLANKED:
        env[name] = ""
    env.update(SECRETS)
    env.update(
        {
            "DATABASE_URL": database,
            "KOMMO_HUB_VAR_DIR": str(var_dir),
            "KOMMO_HUB_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
            "TASKS_BACKEND": "database",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    env.update({name: str(value) for name, value in overrides.items()})
    return env


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..." — comm may contain spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    hub: "HubProcesses | None" = None,
    interval: float = 0.1,
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = f"\n{hub.logs()}" if hub else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{logs}")
        time.sleep(interval)


@dataclass
class HubProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL the process and everything it started (in its session or not)."""
        descendants = children_of(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILLed: reaped at once
            self.popen.wait(timeout=10)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-chars:]


@dataclass
class HubProcesses:
    """The processes one test started, all killed by `close()`.

    Each carries a marker in its environment (inherited by whatever it starts), so that
    `close()` also finds processes that outlived their parent and were re-parented.
    """

    base_env: dict[str, str]
    log_dir: Path
    processes: list[HubProcess] = field(default_factory=list)
    marker: str = field(default_factory=lambda: secrets.token_hex(8))

    def marked_pids(self) -> set[int]:
        """Live processes (not zombies) started by this test, at any depth."""
        needle = f"{MARKER_VARIABLE}={self.marker}".encode()
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0") and pid_alive(int(entry.name)):
                found.add(int(entry.name))
        return found

    def start(self, name: str, argv: list[str], **env: str | float) -> HubProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{len(self.processes):02d}-{name}.log"
        full_env = {**self.base_env, **{k: str(v) for k, v in env.items()}}
        full_env[MARKER_VARIABLE] = self.marker
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = HubProcess(name=name, argv=argv, log_path=log_path, popen=popen)
        self.processes.append(process)
        return process

    def manage(self, *args: str, timeout: float = 120, **env: str | float) -> None:
        """Run a management command to completion (e.g. migrate)."""
        process = self.start(f"manage-{args[0]}", [PYTHON, MANAGE, *args], **env)
        code = process.popen.wait(timeout=timeout)
        assert code == 0, f"manage.py {' '.join(args)} exited {code}:\n{process.log_tail()}"

    def gunicorn(self, *, workers: int = 2, threads: int = 4, **env: str | float) -> str:
        """Start gunicorn on a free port and return its base URL once /healthz answers."""
        for _attempt in range(3):  # another process may grab the free port before gunicorn
            port = free_port()
            process = self.start(
                "gunicorn",
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "kommo_hub.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--threads",
                    str(threads),
                    "--graceful-timeout",
                    "3",
                    "--no-control-socket",
                ],
                **env,
            )
            base = f"http://127.0.0.1:{port}"
            if self.wait_healthy(base, process, timeout=30):
                return base
        raise AssertionError(f"gunicorn never became healthy\n{self.logs()}")

    def wait_healthy(self, base: str, process: HubProcess, *, timeout: float) -> bool:
        """Poll /healthz; False if the process died first (e.g. the port was taken)."""

        def ready() -> bool | None:
            if not process.alive():
                return None
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = ready()
            if state:
                return True
            if state is None:
                return False
            time.sleep(0.1)
        raise AssertionError(f"{base}/healthz did not answer within {timeout}s\n{self.logs()}")

    def worker(self, **env: str | float) -> HubProcess:
        return self.start("worker", [PYTHON, MANAGE, "run_worker", "--interval", "0.1"], **env)

    def scheduler(self, **env: str | float) -> HubProcess:
        return self.start("scheduler", [PYTHON, MANAGE, "run_scheduler"], **env)

    def run_hub(self, *args: str, **env: str | float) -> HubProcess:
        return self.start("run_hub", [PYTHON, MANAGE, "run_hub", *args], **env)

    def logs(self, processes: Iterable[HubProcess] | None = None) -> str:
        parts = []
        for process in self.processes if processes is None else processes:
            state = "running" if process.alive() else f"exit {process.popen.returncode}"
            parts.append(
                f"----- {process.name} (pid {process.pid}, {state}) {process.log_path}\n"
                f"{process.log_tail()}"
            )
        return "\n".join(parts)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.kill_group()
        for _attempt in range(3):
            strays = self.marked_pids()
            if not strays:
                return
            for pid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def post_kommo(base: str, body: bytes, *, client: httpx.Client | None = None) -> httpx.Response:
    url = f"{base}{KOMMO_WEBHOOK_PATH}"
    headers = {"Content-Type": FORM_CONTENT_TYPE}
    if client is not None:
        return client.post(url, content=body, headers=headers)
    return httpx.post(url, content=body, headers=headers, timeout=30)


def log_records(processes: Iterable[HubProcess]) -> list[dict[str, Any]]:
    """The JSON log lines the given processes wrote (other output is skipped)."""
    records = []
    for process in processes:
        for line in process.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return records
