"""Shared test setup: tasks run inline after commit, known secrets, no outside configuration."""

import os
from pathlib import Path
from typing import Any

os.environ["KOMMO_HUB_IGNORE_DOTENV"] = "1"

import pytest
from django.db import connection

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"

SECRETS = {
    "KOMMO_WEBHOOK_SECRET": "kommo-test-secret",
    "RDSTATION_WEBHOOK_SECRET": "rd-test-secret",
    "FORMS_WEBHOOK_SECRET": "forms-test-secret",
    "N8N_CALLBACK_SECRET": "n8n-callback-test-secret",
    "SUPABASE_WEBHOOK_SECRET": "supabase-test-secret",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Postgres-only tests (real parallel workers) run in the Postgres pass of CI, not on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("postgres") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(autouse=True)
def hub_settings(settings: object) -> None:
    for name, value in SECRETS.items():
        setattr(settings, name, value)
    for name in (
        "FORMS_SIGNING_SECRET",
        "N8N_WEBHOOK_URL",
        "N8N_WEBHOOK_SECRET",
        "KOMMO_SUBDOMAIN",
        "KOMMO_BASE_URL",
        "KOMMO_ACCOUNT_ID",
        "KOMMO_ACCESS_TOKEN",
    ):
        setattr(settings, name, "")
    settings.RETRY_BASE_SECONDS = 10.0  # type: ignore[attr-defined]
    # Tasks run inline after commit (the setting_changed signal rebuilds the task backends).
    settings.TASKS_BACKEND = "immediate"  # type: ignore[attr-defined]
    settings.TASKS = {  # type: ignore[attr-defined]
        "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}
    }


@pytest.fixture(autouse=True)
def own_cache(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test gets its own file cache (the embedded default's backend): cached bot states are
    keyed by conversation id, which repeats across tests, test runs and xdist workers."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path_factory.mktemp("cache")),
        }
    }


def shared_fixture(relative: str) -> bytes:
    return (SHARED_FIXTURES / relative).read_bytes()


def own_fixture(relative: str) -> bytes:
    return (OWN_FIXTURES / relative).read_bytes()


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def fresh_rule_cache() -> None:
    """Compiled rules are cached per rule-set version; a rolled-back test can leave a rule set
    with the very same version (same ids, frozen clock) but other content."""
    from routing.selectors import forget_compiled_rules

    forget_compiled_rules()
