"""Reporting tests assert texts in their English source (tests/test_i18n.py checks pt-BR)."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from kommo_hub.models import ApiKey, ApiKeyScope
from tests.reporting.support import Dataset, dataset_build


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def data(db: Any) -> Dataset:
    return dataset_build()


@pytest.fixture
def api(db: Any) -> Client:
    """A client with a reporting API key."""
    _key, plain = ApiKey.generate(name="reports", scope=ApiKeyScope.REPORTING)
    return Client(headers={"authorization": f"Api-Key {plain}"})
