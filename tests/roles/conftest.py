"""Roles tests: texts are asserted in English (tests/test_i18n.py checks the pt-BR side); the
clock stands still on a Wednesday afternoon in São Paulo."""

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.utils import translation

from tests.roles.support import NOW, Team, team_build


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def team(db: None) -> Team:
    return team_build()
