"""A whole hub "installation" for the load and fault test: its own PostgreSQL cluster and Redis,
one or more machines (web + task workers + scheduler, each machine with its own working directory
and port), and local fakes of Kommo (7 requests per second, 429 above it), n8n (the real
workflow's idempotency guard and callback) and Supabase's agenda (the shipped migrations on
the private cluster, behind a PostgREST stand-in: tests/scheduling/postgrest.py).

Nothing here touches the machine's shared Postgres or Redis: the cluster is created with initdb
in a temporary directory on a free port, so the test can restart it at will.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.flows.fakes import FakeKommo
from tests.scheduling.postgrest import PostgrestServer, agenda_prepare
from tests.system.processes import (
    MANAGE,
    PYTHON,
    ROOT,
    HubProcess,
    HubProcesses,
    free_port,
    hub_env,
)


def _pg_bin() -> Path:
    """KOMMO_HUB_PG_BIN, else the newest server Debian installed (/usr/lib/postgresql/<N>/bin)."""
    if os.environ.get("KOMMO_HUB_PG_BIN"):
        return Path(os.environ["KOMMO_HUB_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
N8N_SECRET = "system-test-n8n-secret"
KOMMO_TOKEN = "system-test-kommo-token"
SUPABASE_KEY = "system-test-supabase-service-role-key"
START_SCRIPT = ROOT / "scripts" / "start"


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


# --- PostgreSQL and Redis of our own ---------------------------------------------------------


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.sockets = root / "pgsock"
        self.log = root / "postgres.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        return self.database_url("kommo_hub")

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        done = subprocess.run(
            _as_postgres([*argv]), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        if not self.data.exists():
            self.sockets.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.sockets, "postgres")
                self.data.mkdir()
                shutil.chown(self.data, "postgres")
                self.log.touch()
                shutil.chown(self.log, "postgres")
            self._run(
                str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "--no-sync", "-E", "UTF8", "--locale", "C",
            )  # fmt: skip
        self._pg_ctl("start")
        with psycopg.connect(
            f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname='kommo_hub'").fetchone():
                conn.execute("CREATE DATABASE kommo_hub")

    def _pg_ctl(self, command: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), command, "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", *extra,
        )  # fmt: skip

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """A fast restart: every connection is cut; the server is back `down_seconds` later."""
        if not down_seconds:
            self._pg_ctl("restart", "-m", "fast")
            return
        self._pg_ctl("stop", "-m", "fast")
        time.sleep(down_seconds)
        self._pg_ctl("start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("stop", "-m", "immediate")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.root / "redis.log").open("wb")
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


# --- the fakes -------------------------------------------------------------------------------


class LimitedKommo(FakeKommo):
    """The fake Kommo API (tests/flows/fakes.py) with Kommo's limit: more than `limit` requests
    in any `window` seconds are answered 429 and recorded as violations. Modes, set by the
    scenario: "ok", "429" (every call answered 429, as in a Kommo throttling burst), "5xx", and
    "lost" (leads and notes are created but the answer is a 504, as from a gateway that timed
    out)."""

    def __init__(self, *, limit: int = 7, window: float = 1.0) -> None:
        super().__init__()
        self.limit, self.window = limit, window
        self.mode = "ok"
        self.times: list[float] = []
        self.recent: deque[float] = deque()
        self.violations: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.created_by_request: Counter[str] = Counter()
        self.unknown: list[str] = []
        self.lost_answers = 0

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        now = time.time()
        if path.startswith("/__control/"):
            return self.control(method, path, body)
        self.times.append(now)
        self.recent.append(now)
        while self.recent and self.recent[0] <= now - self.window:
            self.recent.popleft()
        if len(self.recent) > self.limit:
            self.violations.append(now)
            status, answer = 429, {"title": "Too Many Requests", "status": 429}
        elif self.mode == "429":
            status, answer = 429, {"title": "Too Many Requests", "status": 429}
        elif self.mode == "5xx":
            status, answer = 502, {"title": "Bad Gateway", "status": 502}
        else:
            status, answer = super().answer(method, path, body)
            if status == 404:
                self.unknown.append(f"{method} {path}")
            creates = ("/api/v4/leads/complex", "/api/v4/leads/notes")
            if method == "POST" and path.startswith(creates) and status == 200:
                for item in json.loads(body):
                    self.created_by_request[str(item.get("request_id"))] += 1
                if self.mode == "lost":  # created, but the answer never reaches the hub
                    self.lost_answers += 1
                    status, answer = 504, {"title": "Gateway Timeout", "status": 504}
        self.statuses[status] += 1
        return status, answer

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """The test's own endpoints (not Kommo's, not counted): the mode, and what was seen."""
        if method == "POST" and path == "/__control/mode":
            self.mode = json.loads(body)["mode"]
            return 200, {"mode": self.mode}
        return 200, {
            "times": self.times,
            "violations": self.violations,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "created_by_request": dict(self.created_by_request),
            "unknown": self.unknown,
            "lost_answers": self.lost_answers,
        }


@dataclass
class KommoFigures:
    times: list[float]
    violations: list[float]
    statuses: dict[str, int]
    created_by_request: dict[str, int]
    unknown: list[str]
    lost_answers: int

    def max_per_window(self, window: float = 1.0) -> int:
        """The most requests seen in any `window` seconds (sliding, over arrival times)."""
        best, start = 0, 0
        times = sorted(self.times)
        for end, moment in enumerate(times):
            while times[start] <= moment - window:
                start += 1
            best = max(best, end - start + 1)
        return best


class RemoteKommo:
    """LimitedKommo in a process of its own: arrival times are taken by a process that does
    nothing else (in the test's process, the load's threads would delay and bunch them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""
        self.popen: subprocess.Popen[str] | None = None

    def __enter__(self) -> "RemoteKommo":
        self.popen = subprocess.Popen(
            [PYTHON, "-m", "tests.system.stack", "fake-kommo"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=(self.root / "fake-kommo.log").open("wb"),
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.popen.stdout is not None
        self.url = self.popen.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake Kommo did not start")
        return self

    @property
    def mode(self) -> str:
        return "?"

    @mode.setter
    def mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/__control/mode", json={"mode": mode}, timeout=10)

    def figures(self) -> KommoFigures:
        data = httpx.get(f"{self.url}/__control/state", timeout=30).json()
        return KommoFigures(**data)

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


@dataclass
class N8nDelivery:
    key: str
    action: str
    at: float
    envelope: dict[str, Any]


@dataclass
class FakeN8n:
    """n8n's webhook as the real workflow behaves: the secret header checked, each idempotency
    key executed once (a redelivered key is answered 200 "duplicate" and counted as absorbed),
    and the `done` callback posted to `callback_url` with what was "sent" (reply_text), retried
    until the hub takes it. Modes: "ok", "down" (503), "fail" (500), "slow" (answers after
    `slow_seconds`, having executed the action: the hub's timeout makes it redeliver)."""

    slow_seconds: float = 3.0
    callbacks: bool = True
    mode: str = "ok"
    delivered: dict[str, N8nDelivery] = field(default_factory=dict)
    duplicates: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    callback_failures: int = 0
    callback_retries: int = 0
    calls: list[tuple[float, str, str]] = field(default_factory=list)  # (at, mode, key)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[threading.Thread] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = fake.receive(self.headers.get("X-Kommo-Hub-Secret", ""), body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the hub may have timed out already
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhook/kommo-hub"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def receive(self, secret: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if secret != N8N_SECRET:
            return self._count(403, {"message": "Authorization data is wrong!"})
        mode = self.mode
        with self._lock:
            key_seen = str(json.loads(body).get("idempotency_key", "")) if body else ""
            self.calls.append((time.time(), mode, key_seen))
        if mode == "down":
            return self._count(503, {"message": "n8n is starting up"})
        if mode == "fail":
            return self._count(500, {"message": "Workflow could not be started"})
        envelope = json.loads(body)
        key = str(envelope["idempotency_key"])
        with self._lock:
            self.attempts[key] += 1
            duplicate = key in self.delivered
            if duplicate:
                self.duplicates[key] += 1
            else:
                self.delivered[key] = N8nDelivery(
                    key, str(envelope["action"]), time.time(), envelope
                )
        if not duplicate and self.callbacks and envelope.get("callback_url"):
            # A slow workflow reports late: the hub redelivers first and the guard absorbs it.
            delay = self.slow_seconds + 6 if mode == "slow" else 0.2
            thread = threading.Thread(target=self._callback, args=(envelope, delay), daemon=True)
            thread.start()
            self._callbacks.append(thread)
        if mode == "slow":
            time.sleep(self.slow_seconds)
        answer = {"status": "duplicate" if duplicate else "accepted", "idempotency_key": key}
        return self._count(200, answer)

    def _count(self, status: int, answer: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.statuses[status] += 1
        return status, answer

    def _callback(self, envelope: dict[str, Any], delay: float) -> None:
        key = envelope["idempotency_key"]
        body: dict[str, Any] = {
            "idempotency_key": key,
            "status": "done",
            "whatsapp_message_id": "wamid." + hashlib.sha256(key.encode()).hexdigest()[:24],
        }
        if envelope["action"] in ("reply", "schedule", "proactive_message"):
            body["reply_text"] = f"Mensagem automática ({envelope['action']}) {key[-12:]}"
        time.sleep(delay)
        for attempt in range(60):  # like n8n's retry on fail, until the hub is reachable
            try:
                response = httpx.post(envelope["callback_url"], json=body, timeout=10)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            with self._lock:
                self.callback_retries += 1
            time.sleep(min(0.5 * (attempt + 1), 3))
        with self._lock:
            self.callback_failures += 1

    def by_action(self) -> Counter[str]:
        return Counter(d.action for d in self.delivered.values())

    def __enter__(self) -> "FakeN8n":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- machines --------------------------------------------------------------------------------

# Hub timings scaled down so that a day's retries, leases and bursts fit in minutes.
FAST = {
    "REPLY_COALESCE_SECONDS": 3,
    "BOT_ECHO_WINDOW_SECONDS": 5,
    "RETRY_BASE_SECONDS": 1,
    "RETRY_MAX_SECONDS": 5,
    "CLAIM_LEASE_SECONDS": 8,
    "SCHEDULER_TICK_SECONDS": 0.5,
    "WORKER_HEARTBEAT_SECONDS": 2,
    "N8N_TIMEOUT_SECONDS": 2,
    "KOMMO_TIMEOUT_SECONDS": 3,
    "EVENT_MAX_ATTEMPTS": 40,
    "ACTION_MAX_ATTEMPTS": 40,
    "LOG_LEVEL": "WARNING",
    "HUB_HOST": "127.0.0.1",
}


@dataclass
class Machine:
    """One "machine": its own working directory (KOMMO_HUB_VAR_DIR), web port and processes."""

    name: str
    processes: HubProcesses
    port: int
    web_workers: int = 2
    web_threads: int = 4
    workers: list[HubProcess] = field(default_factory=list)
    schedulers: list[HubProcess] = field(default_factory=list)
    web: HubProcess | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, kind: str, argv: list[str]) -> HubProcess:
        if START_SCRIPT.exists():  # the production launcher, when the project has one
            argv = [str(START_SCRIPT), kind]
        return self.processes.start(
            f"{self.name}-{kind}",
            argv,
            PORT=self.port,
            WEB_CONCURRENCY=self.web_workers,
            THREADS=self.web_threads,
        )

    def start_web(self) -> None:
        self.web = self._start(
            "web",
            [PYTHON, "-m", "gunicorn", "kommo_hub.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.web_workers),
             "--threads", str(self.web_threads), "--graceful-timeout", "3",
             "--no-control-socket"],
        )  # fmt: skip

    def wait_web(self, timeout: float = 60) -> None:
        assert self.web is not None
        if not self.processes.wait_healthy(self.base, self.web, timeout=timeout):
            raise AssertionError(f"{self.name}: web did not start\n{self.web.log_tail()}")

    def start_worker(self) -> HubProcess:
        worker = self._start("worker", [PYTHON, MANAGE, "run_worker", "--interval", "0.1"])
        self.workers.append(worker)
        return worker

    def start_scheduler(self) -> HubProcess:
        scheduler = self._start("scheduler", [PYTHON, MANAGE, "run_scheduler"])
        self.schedulers.append(scheduler)
        return scheduler

    def live_workers(self) -> list[HubProcess]:
        return [w for w in self.workers if w.alive()]

    def live_schedulers(self) -> list[HubProcess]:
        return [s for s in self.schedulers if s.alive()]


@dataclass
class Stack:
    """Private Postgres and Redis, the fakes, and the machines sharing them."""

    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    kommo: RemoteKommo
    n8n: FakeN8n
    machines: list[Machine] = field(default_factory=list)
    keep: bool = False
    # Supabase: its agenda tables (supabase/migrations/) in database "supabase" of the private
    # cluster, behind the PostgREST stand-in; so a Postgres restart takes Supabase down too.
    supabase: PostgrestServer | None = None

    @classmethod
    def create(cls, *, root: Path | None = None, keep: bool = False) -> "Stack":
        root = root or Path(tempfile.mkdtemp(prefix="kommo-hub-system-"))
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the postgres user must reach its data directory
        return cls(
            root=root,
            postgres=PrivatePostgres(root),
            redis=PrivateRedis(root),
            kommo=RemoteKommo(root),
            n8n=FakeN8n(),
            keep=keep,
        )

    def env(self, var_dir: Path, **overrides: str | float) -> dict[str, str]:
        env = hub_env(database=self.postgres.url, var_dir=var_dir)
        env.update({k: str(v) for k, v in FAST.items()})
        env.update(
            {
                "REDIS_URL": self.redis.url,
                "N8N_WEBHOOK_URL": self.n8n.url,
                "N8N_WEBHOOK_SECRET": N8N_SECRET,
                "KOMMO_BASE_URL": self.kommo.url,
                "KOMMO_ACCESS_TOKEN": KOMMO_TOKEN,
                "KOMMO_MAX_REQUESTS_PER_SECOND": "7",
            }
        )
        if self.supabase is not None:
            env["SUPABASE_URL"] = self.supabase.url
            env["SUPABASE_SERVICE_ROLE_KEY"] = SUPABASE_KEY
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def start(self, **overrides: str | float) -> None:
        """Databases and fakes up, the schema migrated (once, from the first machine's env)."""
        self.postgres.start()
        agenda = self.postgres.database_url("supabase")
        agenda_prepare(
            admin_dsn=self.postgres.database_url("postgres"), dsn=agenda, name="supabase"
        )
        self.supabase = PostgrestServer(agenda, key=SUPABASE_KEY).__enter__()
        self.redis.start()
        self.kommo.__enter__()
        self.n8n.__enter__()
        self.overrides = overrides
        setup = HubProcesses(
            base_env=self.env(self.root / "setup", **overrides), log_dir=self.root / "logs-setup"
        )
        try:
            setup.manage("migrate", "--no-input", timeout=300)
        finally:
            setup.close()

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run a management command against the stack's database; returns its output."""
        done = subprocess.run(
            [PYTHON, MANAGE, *args],
            cwd=ROOT,
            env=self.env(self.root / "setup", **self.overrides),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def add_machine(self, name: str, *, web_workers: int = 2, web_threads: int = 4) -> Machine:
        var_dir = self.root / f"machine-{name}"
        env = self.env(var_dir, **self.overrides)
        port = free_port()
        env["HUB_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        machine = Machine(
            name=name,
            processes=HubProcesses(base_env=env, log_dir=self.root / f"logs-{name}"),
            port=port,
            web_workers=web_workers,
            web_threads=web_threads,
        )
        self.machines.append(machine)
        return machine

    def logs(self) -> str:
        return "\n".join(m.processes.logs() for m in self.machines)

    def close(self) -> None:
        for machine in self.machines:
            machine.processes.close()
        with contextlib.suppress(Exception):
            self.n8n.__exit__()
        if self.supabase is not None:
            with contextlib.suppress(Exception):
                self.supabase.__exit__()
        with contextlib.suppress(Exception):
            self.kommo.__exit__()
        self.redis.stop()
        self.postgres.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def kill_hard(process: HubProcess) -> None:
    """SIGKILL one process (not its group: a machine's other processes keep running)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    process.popen.wait(timeout=10)


if __name__ == "__main__":  # python -m tests.system.stack fake-kommo: serve, print the URL
    import sys

    if sys.argv[1:] != ["fake-kommo"]:
        raise SystemExit("usage: python -m tests.system.stack fake-kommo")
    fake = LimitedKommo()
    print(fake.url, flush=True)
    fake.httpd.serve_forever(poll_interval=0.05)
