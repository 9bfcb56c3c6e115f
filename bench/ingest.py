"""Ingest benchmark: the Kommo webhook receiver against a raw-insert baseline, side by side.

Starts gunicorn on a scratch Postgres database, then drives two endpoints of the same server
from a light asyncio load generator on loopback:

  baseline  POST /bench/baseline/           one INSERT of the raw body (bench/urls.py)
  hub       POST /webhooks/kommo/<secret>/  the real receiver: raw request, one event per item
                                            (unique dedupe key), the processing task row, in
                                            one transaction before the answer

Phases, interleaved baseline/hub/hub/baseline… so that noise on the machine hits both:
  1. closed loop: --concurrency connections send back to back for --duration s → req/s
  2. open loop:   --rate req/s on a fixed timetable for --duration s; latency is measured from
                  the *scheduled* send time (no coordinated omission) → p50 / p95 / p99

Prints a table, the ratio hub/baseline and the verdicts (goal: ratio ≥ 0.7, hub p99 < 50 ms at
100 req/s), checks that every accepted hub request produced exactly one InboundEvent and one
task row, and writes the figures as JSON to bench/results/.

Exit status: 0 when the run completed and the row counts check out (whatever the figures), 1 if
it could not run, 2 on a count mismatch or failed requests, 3 with --strict if a goal was missed.

Run: .venv/bin/python bench/ingest.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
FIXTURE = ROOT.parent / "shared" / "fixtures" / "kommo" / "lead_add.form"
FIXTURE_LEAD_ID = "18754321"
FIXTURE_ACCOUNT_ID = "31234567"
FIXTURE_SUBDOMAIN = "acmevendas"
SECRET = "bench-kommo-secret"
BASELINE_PATH = "/bench/baseline/"
HUB_PATH = f"/webhooks/kommo/{SECRET}/"
GOAL_RATIO = 0.7
GOAL_P99_MS = 50.0
REQUEST_TIMEOUT_S = 10.0


# --- HTTP on loopback: raw asyncio streams (lighter than an HTTP library on 2 cores) ----------


class HttpError(Exception):
    pass


class Connection:
    """One HTTP/1.1 connection; with keepalive it is reused until the server closes it."""

    def __init__(self, host: str, port: int, keepalive: bool) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "User-Agent: kommo-hub-bench\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if self.keepalive else 'close'}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.close()
            raise HttpError("connection closed before the response") from exc
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        length = headers.get("content-length")
        if length is not None:
            await self.reader.readexactly(int(length))
        else:
            await self.reader.read()  # until the server closes
            self.close()
        if not self.keepalive or headers.get("connection", "").lower() == "close":
            self.close()
        self.last_used = time.perf_counter()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    """Idle connections, most recently used first; ones idle for long are dropped, not reused
    (so the server's keep-alive timeout never races a request)."""

    def __init__(self, host: str, port: int, keepalive: bool, max_idle_s: float = 1.0) -> None:
        self.host, self.port, self.keepalive, self.max_idle_s = host, port, keepalive, max_idle_s
        self.idle: list[Connection] = []

    def get(self) -> Connection:
        now = time.perf_counter()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.last_used < self.max_idle_s and conn.writer is not None:
                return conn
            conn.close()
        return Connection(self.host, self.port, self.keepalive)

    def put(self, conn: Connection) -> None:
        if conn.writer is not None:
            self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# --- bodies -------------------------------------------------------------------------------------


class Bodies:
    """The Kommo lead fixture with a fresh lead id per request (the dedupe would absorb repeats)."""

    def __init__(self, template: bytes, start: int = 20_000_000) -> None:
        if FIXTURE_LEAD_ID.encode() not in template:
            raise SystemExit(f"{FIXTURE} no longer contains lead id {FIXTURE_LEAD_ID}")
        self.template = template
        self.next_id = start

    def next(self) -> bytes:
        self.next_id += 1
        return self.template.replace(FIXTURE_LEAD_ID.encode(), str(self.next_id).encode())


# --- measurement --------------------------------------------------------------------------------


@dataclass
class Sample:
    endpoint: str
    mode: str  # "closed" or "open"
    round: int
    sent: int = 0
    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    # Closed loop: only answers that arrive within the window count towards req/s (the drain of
    # the requests still in flight at its end would otherwise weigh on the slower endpoint).
    window_end: float = float("inf")
    ok_in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    max_send_lag_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok_in_window / self.elapsed_s if self.elapsed_s else 0.0

    def error(self, what: str) -> None:
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1000 samples is the 990th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def _one(
    pool: Pool, path: str, body: bytes, sample: Sample, start: float, timeout: float
) -> None:
    conn = pool.get()
    sample.sent += 1
    try:
        status = await asyncio.wait_for(conn.post(path, body), timeout)
    except (OSError, HttpError, TimeoutError, ValueError, IndexError) as exc:
        conn.close()
        sample.error(type(exc).__name__)
        return
    done = time.perf_counter()
    sample.latencies_ms.append((done - start) * 1000)
    if status == 200:
        sample.ok += 1
        sample.ok_in_window += done <= sample.window_end
    else:
        sample.error(f"HTTP {status}")
    pool.put(conn)


async def closed_loop(
    host: str, port: int, path: str, bodies: Bodies, sample: Sample, args: argparse.Namespace
) -> None:
    pool = Pool(host, port, args.keepalive)
    deadline = sample.window_end = time.perf_counter() + args.duration

    async def client() -> None:
        while time.perf_counter() < deadline:
            await _one(pool, path, bodies.next(), sample, time.perf_counter(), REQUEST_TIMEOUT_S)

    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    sample.elapsed_s = args.duration
    pool.close()


async def open_loop(
    host: str, port: int, path: str, bodies: Bodies, sample: Sample, args: argparse.Namespace
) -> None:
    pool = Pool(host, port, args.keepalive)
    count = round(args.rate * args.duration)
    interval = 1.0 / args.rate
    began = time.perf_counter()
    tasks = []
    for i in range(count):
        scheduled = began + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sample.max_send_lag_ms = max(
            sample.max_send_lag_ms, (time.perf_counter() - scheduled) * 1000
        )
        # Latency counts from the scheduled time: a stall delays the next sends, and is charged.
        tasks.append(
            asyncio.ensure_future(
                _one(pool, path, bodies.next(), sample, scheduled, REQUEST_TIMEOUT_S)
            )
        )
    await asyncio.gather(*tasks)
    sample.elapsed_s = time.perf_counter() - began
    pool.close()


# --- Postgres and gunicorn ----------------------------------------------------------------------


def ensure_postgres(admin_url: str) -> None:
    parts = urlsplit(admin_url)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 5432)
    ready = ["pg_isready", "-q", "-h", host, "-p", port]
    if shutil.which("pg_isready") and subprocess.run(ready, check=False).returncode == 0:
        return
    clusters = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if clusters and shutil.which("pg_ctlcluster") and host in {"127.0.0.1", "localhost"}:
        print(f"Starting PostgreSQL {clusters[0].name}…", flush=True)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[0].name, "main", "start"],
            check=False,
        )
    for _ in range(30):
        try:
            psycopg.connect(admin_url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(1)
    raise SystemExit(f"PostgreSQL is not reachable at {host}:{port}")


def recreate_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def server_env(database_url: str, var_dir: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "KOMMO_", "DATABASE_", "TASKS_", "LOG_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
            "DJANGO_ROOT_URLCONF": "bench.urls",
            "DJANGO_DEBUG": "0",
            "KOMMO_HUB_IGNORE_DOTENV": "1",
            "KOMMO_HUB_VAR_DIR": var_dir,
            "DATABASE_URL": database_url,
            "TASKS_BACKEND": "database",
            "KOMMO_WEBHOOK_SECRET": SECRET,
            # As in production: the receiver checks the account the webhook comes from.
            "KOMMO_ACCOUNT_ID": FIXTURE_ACCOUNT_ID,
            "KOMMO_SUBDOMAIN": FIXTURE_SUBDOMAIN,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log_path = args, env, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def description(self) -> str:
        a = self.args
        if a.worker_class == "sync":
            return f"gunicorn {a.workers} sync workers"
        return f"gunicorn {a.workers} {a.worker_class} workers x {a.threads} threads"

    def start(self) -> None:
        a = self.args
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "kommo_hub.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(a.workers),
            "--worker-class",
            a.worker_class,
            "--threads",
            str(a.threads),
            "--keep-alive",
            "5",
            "--backlog",
            "2048",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]
        self.log = self.log_path.open("wb")
        # Own session: a Ctrl-C in the terminal reaches us, and we stop the server ourselves.
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited at start:\n{self.tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
            ):
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer /healthz within 60 s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self.log.close()
        if proc.poll() is not None:
            return
        # SIGINT is gunicorn's quick shutdown: every measured request was answered already.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def row_counts(database_url: str) -> dict[str, int]:
    requests = "SELECT count(*) FROM kommo_hub_inboundrequest"
    queries = {
        # The baseline stores the body only; the hub also its content type.
        "baseline_requests": f"{requests} WHERE content_type = ''",
        "hub_requests": f"{requests} WHERE content_type <> ''",
        "hub_requests_accepted_1": (
            "SELECT count(*) FROM kommo_hub_inboundrequest"
            " WHERE content_type <> '' AND accepted = 1 AND duplicates = 0"
        ),
        "events": "SELECT count(*) FROM kommo_hub_inboundevent",
        "requests_with_one_event": (
            "SELECT count(*) FROM (SELECT request_id FROM kommo_hub_inboundevent"
            " GROUP BY request_id HAVING count(*) = 1) AS one"
        ),
        "distinct_dedupe_keys": "SELECT count(DISTINCT dedupe_key) FROM kommo_hub_inboundevent",
        "task_rows": "SELECT count(*) FROM django_tasks_database_dbtaskresult",
    }
    with psycopg.connect(database_url) as conn:
        return {name: int(conn.execute(q).fetchone()[0]) for name, q in queries.items()}  # type: ignore[index]


# --- the run --------------------------------------------------------------------------------------


def summarize(samples: list[Sample], endpoint: str, mode: str) -> dict[str, Any]:
    mine = [s for s in samples if s.endpoint == endpoint and s.mode == mode]
    lat = [x for s in mine for x in s.latencies_ms]
    ok = sum(s.ok for s in mine)
    in_window = sum(s.ok_in_window for s in mine)
    elapsed = sum(s.elapsed_s for s in mine)
    return {
        "requests": sum(s.sent for s in mine),
        "ok": ok,
        "failed": sum(s.failed for s in mine),
        "errors": dict(sum((Counter(s.errors) for s in mine), Counter())),
        "elapsed_s": round(elapsed, 3),
        "rps": round(in_window / elapsed, 1) if elapsed else 0.0,
        "rps_per_round": [round(s.rps, 1) for s in mine],
        "p99_ms_per_round": [round(percentile(s.latencies_ms, 99), 2) for s in mine],
        "p50_ms": round(percentile(lat, 50), 2),
        "p95_ms": round(percentile(lat, 95), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else float("nan"),
        "max_send_lag_ms": round(max((s.max_send_lag_ms for s in mine), default=0.0), 2),
    }


async def run_phases(port: int, args: argparse.Namespace) -> list[Sample]:
    host = "127.0.0.1"
    bodies = Bodies(FIXTURE.read_bytes())
    endpoints = {"baseline": BASELINE_PATH, "hub": HUB_PATH}
    samples: list[Sample] = []

    # Warm-up (not measured): every worker thread imports, connects and plans its queries.
    warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
    for name in ("baseline", "hub"):
        sample = Sample(name, "warmup", 0)
        await closed_loop(host, port, endpoints[name], bodies, sample, warm)
        samples.append(sample)

    # baseline, hub, hub, baseline, …: a drift over the run weighs on both alike.
    order = [("baseline", "hub") if r % 2 == 0 else ("hub", "baseline") for r in range(args.rounds)]
    for mode, phase in (("closed", closed_loop), ("open", open_loop)):
        for r, pair in enumerate(order):
            for name in pair:
                sample = Sample(name, mode, r)
                await phase(host, port, endpoints[name], bodies, sample, args)
                samples.append(sample)
                what = (
                    f"{sample.rps:7.1f} req/s"
                    if mode == "closed"
                    else f"p99 {percentile(sample.latencies_ms, 99):6.1f} ms"
                )
                print(
                    f"  {mode:6} round {r + 1}/{args.rounds} {name:8} {what}"
                    f"  ({sample.ok} ok, {sample.failed} failed)",
                    flush=True,
                )
                await asyncio.sleep(args.pause)
    return samples


def report(
    samples: list[Sample],
    args: argparse.Namespace,
    server: str,
    counts: dict[str, int],
    load_before: float,
) -> dict[str, Any]:
    closed = {n: summarize(samples, n, "closed") for n in ("baseline", "hub")}
    opened = {n: summarize(samples, n, "open") for n in ("baseline", "hub")}
    overall = closed["hub"]["rps"] / closed["baseline"]["rps"] if closed["baseline"]["rps"] else 0.0
    pairs = zip(closed["hub"]["rps_per_round"], closed["baseline"]["rps_per_round"], strict=True)
    round_ratios = [round(h / b, 3) if b else 0.0 for h, b in pairs]
    # The headline is the median of the paired rounds: one noisy slice of the machine moves it
    # less than it moves the totals.
    ratio = statistics.median(round_ratios) if round_ratios else overall
    hub_p99 = opened["hub"]["p99_ms"]
    # Every request answered 200 (warm-up included) must be stored: the hub's with one event.
    expected_hub = sum(s.ok for s in samples if s.endpoint == "hub")
    expected_base = sum(s.ok for s in samples if s.endpoint == "baseline")
    count_ok = (
        counts["hub_requests"] == expected_hub
        and counts["events"] == expected_hub
        and counts["requests_with_one_event"] == expected_hub
        and counts["hub_requests_accepted_1"] == expected_hub
        and counts["distinct_dedupe_keys"] == expected_hub
        and counts["task_rows"] == expected_hub
        and counts["baseline_requests"] == expected_base
    )

    cpus = os.cpu_count() or 1
    print()
    print(f"Server: {server}, Postgres, DEBUG off, LOG_LEVEL=WARNING; client: asyncio on loopback")
    print(f"Machine: {cpus} CPUs, load average {load_before:.2f} before the run", end="")
    busy = load_before > cpus / 2
    print(" (other work was running: expect noisy figures)" if busy else "")
    print(
        f"Closed loop: {args.concurrency} connections, {args.rounds} x {args.duration:g} s each;"
        f" open loop: {args.rate:g} req/s, {args.rounds} x {args.duration:g} s each;"
        f" {'keep-alive' if args.keepalive else 'one connection per request'}"
    )
    print()
    header = f"{'':10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'failed':>8}"
    print(f"{'':10}{'closed loop (max throughput)':<37}| open loop at {args.rate:g} req/s")
    print(f"{'':10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>7}   |" + header[10:])
    for name in ("baseline", "hub"):
        c, o = closed[name], opened[name]
        print(
            f"{name:10}{c['rps']:>9.1f}{c['p50_ms']:>9.1f}{c['p99_ms']:>9.1f}{c['failed']:>7}   |"
            f"{o['rps']:>9.1f}{o['p50_ms']:>9.1f}{o['p95_ms']:>9.1f}{o['p99_ms']:>9.1f}"
            f"{o['max_ms']:>9.1f}{o['failed']:>8}"
        )
    print()
    shown = ", ".join(f"{r:.2f}" for r in round_ratios)
    print(
        f"closed loop per round, req/s: baseline {closed['baseline']['rps_per_round']},"
        f" hub {closed['hub']['rps_per_round']}; ratio per round [{shown}]"
    )
    print(
        f"open loop per round, p99 ms: baseline {opened['baseline']['p99_ms_per_round']},"
        f" hub {opened['hub']['p99_ms_per_round']}"
    )
    lag = max(opened["baseline"]["max_send_lag_ms"], opened["hub"]["max_send_lag_ms"])
    print(f"open loop: the client's worst send delay was {lag:.1f} ms (included in the latencies)")
    print()
    ratio_ok = ratio >= GOAL_RATIO
    p99_ok = hub_p99 < GOAL_P99_MS
    print(
        f"ratio hub/baseline throughput: {ratio:.2f}"
        f"  (goal >= {GOAL_RATIO}: {'PASS' if ratio_ok else 'MISS'});"
        f" median of {len(round_ratios)} paired rounds, {overall:.2f} on the totals"
    )
    print(
        f"hub p99 at {args.rate:g} req/s: {hub_p99:.1f} ms"
        f"  (goal < {GOAL_P99_MS:g} ms: {'PASS' if p99_ok else 'MISS'});"
        f" baseline p99 {opened['baseline']['p99_ms']:.1f} ms"
    )
    print(
        f"row check: {expected_hub} hub requests answered 200 (warm-up included),"
        f" {counts['hub_requests']} stored, {counts['events']} InboundEvent rows"
        f" ({counts['distinct_dedupe_keys']} distinct keys), {counts['task_rows']} task rows;"
        f" baseline {expected_base} answered, {counts['baseline_requests']} stored:"
        f" {'OK, exactly one event per hub request' if count_ok else 'MISMATCH'}"
    )
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": cpus,
            "load_average_before": round(load_before, 2),
            "python": platform.python_version(),
        },
        "server": server,
        "options": {
            k: vars(args)[k]
            for k in ("duration", "rounds", "concurrency", "rate", "warmup", "keepalive")
        },
        "closed_loop": closed,
        "open_loop": opened,
        "ratio": round(ratio, 3),
        "ratio_of_totals": round(overall, 3),
        "ratio_per_round": round_ratios,
        "goals": {
            "ratio_min": GOAL_RATIO,
            "ratio_ok": ratio_ok,
            "p99_max_ms": GOAL_P99_MS,
            "p99_ok": p99_ok,
        },
        "row_counts": counts,
        "row_counts_ok": count_ok,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Ingest benchmark: POST /webhooks/kommo/<secret>/ vs a raw-insert baseline on the same"
            " gunicorn + Postgres, closed-loop throughput ratio and open-loop p99 at a fixed rate."
        ),
        epilog="Exit 0: ran and the rows check out (figures are reported, not enforced).",
    )
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds per round and endpoint (2)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="baseline/hub pairs per phase (10)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="closed-loop connections in flight (16)"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop req/s (100)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds (3)")
    parser.add_argument("--pause", type=float, default=0.2, help="rest between rounds, s (0.2)")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run: 1 round of 2 s, 1 s warm-up"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument(
        "--worker-class", default="gthread", choices=["gthread", "sync"], help="(gthread)"
    )
    parser.add_argument(
        "--keepalive",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="reuse connections (default: one connection per request, as webhook senders do)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        help="a Postgres URL allowed to create databases (env BENCH_ADMIN_DATABASE_URL)",
    )
    parser.add_argument("--db-name", default="kommo_hub_bench", help="scratch database (dropped)")
    parser.add_argument("--keep-db", action="store_true", help="leave the scratch database")
    parser.add_argument("--strict", action="store_true", help="exit 3 if a goal is missed")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup, args.pause = 2.0, 1, 1.0, 0.2
    if args.worker_class == "sync":
        args.threads = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    ensure_postgres(args.admin_url)
    database_url = recreate_database(args.admin_url, args.db_name)
    var_dir = tempfile.mkdtemp(prefix="kommo-hub-bench-")
    env = server_env(database_url, var_dir)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    server = Gunicorn(args, env, Path(var_dir) / "gunicorn.log")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        print(f"Migrating {args.db_name}…", flush=True)
        migrate(env)
        server.start()
        print(f"{server.description} on 127.0.0.1:{server.port}", flush=True)
        samples = asyncio.run(run_phases(server.port, args))
        server.stop()  # every answered request is committed; stop before counting
        result = report(samples, args, server.description, row_counts(database_url), load_before)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()
        if not args.keep_db:
            with contextlib.suppress(psycopg.Error):
                drop_database(args.admin_url, args.db_name)
        shutil.rmtree(var_dir, ignore_errors=True)

    if not args.no_json:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS_DIR / f"ingest-{stamp}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {out.relative_to(ROOT)}")
    failed = sum(s.failed for s in samples)
    if not result["row_counts_ok"] or failed:
        print(f"FAILED: {failed} failed requests, row counts ok={result['row_counts_ok']}")
        return 2
    if args.strict and not (result["goals"]["ratio_ok"] and result["goals"]["p99_ok"]):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
