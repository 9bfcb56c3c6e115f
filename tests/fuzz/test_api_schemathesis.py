"""Schemathesis over every operation of the machine API: the scheduling API (a scheduling key)
and the reporting API (a reporting key): never a 500, every answer matches the schema. (Which
key reaches which API is tested in tests/roles/test_api_keys.py.)"""

from typing import Any

import pytest
import schemathesis
from hypothesis import given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from kommo_hub.models import ApiKey, ApiKeyScope
from kommo_hub.wsgi import application
from scheduling.models import AppointmentStatus
from tests.reporting.support import dataset_build
from tests.scheduling.booking_support import MONDAY, Team, at, monday_morning, team_build
from tests.scheduling.factories import AppointmentFactory

from .conftest import fuzz_settings

__all__ = ["monday_morning"]

SCHEDULING_EXAMPLES = 30
REPORTING_EXAMPLES = 12


def _schema(scope: str) -> tuple[Any, dict[str, str]]:
    _key, plain = ApiKey.generate(name=f"fuzz-{scope}", scope=scope)
    headers = {"Authorization": f"Api-Key {plain}"}
    return schemathesis.openapi.from_wsgi("/api/schema/", application, headers=headers), headers


def _run(schema: Any, path_regex: str, headers: dict[str, str], examples: int) -> int:
    operations = [
        result.ok() for result in schema.include(path_regex=path_regex).get_all_operations()
    ]
    for operation in operations:

        @given(case=operation.as_strategy())
        @fuzz_settings(examples)
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        check()
    return len(operations)


@pytest.fixture
def team(db: None, monday_morning: None) -> Team:
    team = team_build()
    # Real ids for the generated paths to find: one of each status.
    for hour, status in enumerate(AppointmentStatus.values):
        AppointmentFactory(
            lead=team.lead, salesperson=team.ana, starts_at=at(MONDAY, 9 + hour), status=status
        )
    return team


@pytest.mark.django_db
def test_every_scheduling_operation_answers_without_500s_and_matches_the_schema(
    team: Team, connection_kept: None
) -> None:
    schema, headers = _schema(ApiKeyScope.SCHEDULING)

    assert _run(schema, "^/api/scheduling/", headers, SCHEDULING_EXAMPLES) == 6


@pytest.mark.django_db
def test_every_reporting_operation_answers_without_500s_and_matches_the_schema(
    connection_kept: None,
) -> None:
    dataset_build()
    schema, headers = _schema(ApiKeyScope.REPORTING)

    assert _run(schema, "^/api/v1/", headers, REPORTING_EXAMPLES) == 8


@pytest.mark.django_db
def test_the_schema_has_no_operation_outside_the_two_apis(connection_kept: None) -> None:
    schema, _headers = _schema(ApiKeyScope.REPORTING)
    paths = {result.ok().path for result in schema.get_all_operations()}

    assert {path.split("/")[2] for path in paths} == {"scheduling", "v1"}
