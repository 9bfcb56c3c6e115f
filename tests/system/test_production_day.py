"""The load and fault test (issue 8): a production day compressed into minutes, on two machines
sharing a private Postgres and Redis, with faults injected while it runs. The scenario, the
figures and the criteria are in tests/system/scenario.py; `bench/system.py` runs the same code and
prints the figures (`--size full` for a longer day).

It starts its own Postgres cluster, so it needs no test database; it is marked `postgres` so that
it runs once in CI, in the Postgres pass.
"""

import shutil

import pytest

from tests.system.scenario import run
from tests.system.stack import PG_BIN

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or shutil.which("redis-server") is None,
    reason=f"needs PostgreSQL's initdb in {PG_BIN} and redis-server to start private servers",
)
def test_a_production_day_with_faults_meets_every_criterion() -> None:
    report = run("ci")

    print(report.text())
    failed = [f"{c.name}: {c.detail}" for c in report.criteria if not c.passed]
    assert failed == [], report.text()
