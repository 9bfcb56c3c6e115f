"""Smoke test of the ingest benchmark: a --quick run finishes and prints its ratio.

Performance is not asserted here (bench/ingest.py reports it); only that the script works.
"""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _admin_url() -> str:
    """The test server's maintenance database: the benchmark creates its own scratch one."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{user}{password}@{host}:{port}/postgres"


def test_quick_ingest_benchmark_runs_and_prints_the_ratio(tmp_path: Path) -> None:
    db_name = f"kommo_hub_bench_smoke_{os.getpid()}"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ingest.py"),
            "--quick",
            "--no-json",
            "--admin-url",
            _admin_url(),
            "--db-name",
            db_name,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ratio hub/baseline throughput:" in done.stdout, output
    assert "p99 at 100 req/s" in done.stdout, output
    assert "exactly one event per hub request" in done.stdout, output
