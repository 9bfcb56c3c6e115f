"""Property-based check of /api/v1/ against its own OpenAPI schema (schemathesis).

The schema is loaded from the Django app (/api/schema/, with a reporting key); every /api/v1/
operation is called with generated parameters: never a 500, and every answer matches the
schema. max_examples stays small so CI stays fast.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from kommo_hub.models import ApiKey, ApiKeyScope
from kommo_hub.wsgi import application
from tests.reporting.support import Dataset

MAX_EXAMPLES = 25


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """Like Django's test client: the WSGI app must not close the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_every_reporting_operation_answers_without_500s_and_matches_the_schema(
    data: Dataset, connection_kept: None
) -> None:
    _key, plain = ApiKey.generate(name="schemathesis", scope=ApiKeyScope.REPORTING)
    headers = {"Authorization": f"Api-Key {plain}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, headers=headers)
    operations = [
        result.ok() for result in schema.include(path_regex="^/api/v1/").get_all_operations()
    ]
    assert len(operations) == 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        check()
