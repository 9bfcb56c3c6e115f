"""Fuzzing (hypothesis, schemathesis): every receiver and API endpoint, never a 500.

The budget is sized for CI (the whole folder in well under a minute per database pass) and the
examples are derandomized, so a run never flakes: the same inputs every time. FUZZ_EXAMPLES
multiplies the budget and FUZZ_RANDOM=1 draws fresh inputs, for a deeper hunt by hand, e.g.
`FUZZ_RANDOM=1 FUZZ_EXAMPLES=20 scripts/test tests/fuzz`.
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from django.utils import translation
from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("FUZZ_EXAMPLES", "1")))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples * SCALE,
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """Like Django's test client: a WSGI app called directly must not close the test's
    transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
