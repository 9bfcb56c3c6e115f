"""Smoke test of the routing benchmark: a tiny run finishes, prints its table and finds the same
number of queries per assignment in every configuration.

Times are not asserted here (bench/routing.py reports them); the query count is, since it is the
benchmark's own verdict (exit 2 when it differs).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.system.processes import database_url

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_routing_benchmark_runs_and_finds_a_constant_query_count() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if connection.vendor == "postgresql":
        # The same server as the tests; the benchmark creates (and drops) its own database.
        env["DATABASE_URL"] = database_url(connection.settings_dict)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "routing.py"),
            "--leads",
            "4",
            "--rules",
            "2,30",
            "--people",
            "2,30",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "queries/assignment" in done.stdout, output
    assert "30 rules, 30 people" in done.stdout, output
    assert "in every configuration: SAME" in done.stdout, output
    assert "time ratio vs 2 rules, 2 people:" in done.stdout, output
