"""Smoke test of the conversation benchmark: a tiny run finishes, prints its tables, finds the
same number of queries per message in every configuration and no database read of the bot state.

Times are not asserted here (bench/conversation.py reports them); the query counts are, since
they are the benchmark's own verdict (exit 2 when they differ).
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


def test_tiny_conversation_benchmark_runs_and_finds_constant_queries_and_no_bot_state_reads() -> (
    None
):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if connection.vendor == "postgresql":
        # The same server as the tests; the benchmark creates (and drops) its own database.
        env["DATABASE_URL"] = database_url(connection.settings_dict)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "conversation.py"),
            "--messages",
            "3",
            "--previous",
            "2,40",
            "--conversations",
            "1,4",
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
    assert "40 msgs, 4 conv" in done.stdout, output
    assert "queries per message that opens a burst:" in done.stdout, output
    assert "in every configuration: SAME" in done.stdout, output
    assert "database reads of the bot state on a warm cache: 0 (ZERO)" in done.stdout, output
    assert "time ratio vs 2 msgs, 1 conv" in done.stdout, output
