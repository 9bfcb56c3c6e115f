"""Intake tests: the shared setup (tests/conftest.py) plus a fast hasher for admin users."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: object) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
