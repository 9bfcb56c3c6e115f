"""Bot control's admin texts are asserted in their English source; tests/test_i18n.py checks that
each has its pt-BR translation. (Kommo notes are literal pt-BR: the CRM's language.)"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield
