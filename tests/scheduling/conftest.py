"""Scheduling tests assert texts in their English source (tests/test_i18n.py checks the pt-BR
catalog); Supabase is not configured unless a test configures it."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation

from tests.scheduling.booking_support import monday_morning, supabase, team

__all__ = ["monday_morning", "supabase", "team"]


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def no_supabase(settings: Any) -> None:
    settings.SUPABASE_URL = ""
    settings.SUPABASE_SERVICE_ROLE_KEY = ""
