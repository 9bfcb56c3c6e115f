"""Smoke test of the reporting benchmark: a tiny run seeds, times every report and finishes.

Times are not asserted here (bench/reporting.py reports them, and judges the 1 s budget at its
real sizes); the run must succeed and print a line per report.
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
REPORTS = (
    "leads_per_day",
    "distribution",
    "speed_to_lead",
    "bot_activity",
    "appointments",
    "funnel",
)


def test_tiny_reporting_benchmark_runs_and_times_every_report() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = database_url(connection.settings_dict)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "reporting.py"),
            "--sizes",
            "30,60",
            "--budget",
            "60",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seeded 60 leads" in done.stdout
    for name in REPORTS:
        assert f"\n{name} " in done.stdout
    assert "every report within 60.0 s at 60 leads" in done.stdout
