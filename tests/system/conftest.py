"""Fixtures for system tests: real hub processes against the pytest test database."""

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.system.processes import HubProcesses, database_url, hub_env


@pytest.fixture
def hub(transactional_db: None, tmp_path: Path) -> Iterator[HubProcesses]:
    """Starts processes on the test database (rows committed, visible to them); kills them all.

    Depends on `transactional_db` so that the processes are gone before the tables are flushed.
    """
    env = hub_env(database=database_url(connection.settings_dict), var_dir=tmp_path / "var")
    processes = HubProcesses(base_env=env, log_dir=tmp_path / "logs")
    try:
        yield processes
    finally:
        processes.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    """A failing system test shows the logs of the processes it started."""
    report = yield
    processes = getattr(item, "funcargs", {}).get("hub")
    if report.failed and isinstance(processes, HubProcesses) and processes.processes:
        report.sections.append(("hub process logs", processes.logs()))
    return report
