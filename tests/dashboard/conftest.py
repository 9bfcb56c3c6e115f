"""The dashboard's texts are asserted in their English source (tests/test_i18n.py checks the
pt-BR catalog); one test asks for pt-BR on purpose."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield
