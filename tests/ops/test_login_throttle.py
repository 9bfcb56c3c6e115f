"""Admin login throttling: failures per username and per address lock out, across clients."""

import logging
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-admin-password-2026"
LOCKED_EN = "Too many failed login attempts. Try again in 15 minute(s)."
INVALID_EN = (
    "Please enter the correct username and password for a staff account. "
    "Note that both fields may be case-sensitive."
)


@pytest.fixture(autouse=True)
def throttle(settings: Any) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_LOCKOUT_SECONDS = 900


@pytest.fixture
def manager() -> User:
    return User.objects.create_superuser("gerente", "gerente@example.com", PASSWORD)


def _login(client: Client, username: str, password: str, **headers: str) -> str:
    response = client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        headers={"accept-language": "en", **headers},
    )
    if response.status_code == 302:
        return "logged in"
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    return " ".join(str(e) for e in errors)


def _client(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def test_a_correct_password_logs_in(manager: User) -> None:
    client = _client("10.0.0.1")

    assert _login(client, "gerente", PASSWORD) == "logged in"
    assert client.session["_auth_user_id"] == str(manager.pk)


def test_failures_for_a_username_lock_it_even_from_another_client_with_the_right_password(
    manager: User,
) -> None:
    attacker = _client("10.0.0.66")
    for _ in range(3):
        assert _login(attacker, "gerente", "wrong") == INVALID_EN

    owner = _client("10.0.0.1")
    assert _login(owner, "gerente", PASSWORD) == LOCKED_EN
    assert "_auth_user_id" not in owner.session
    # The username is matched ignoring case and surrounding spaces.
    assert _login(_client("10.0.0.2"), " GERENTE ", PASSWORD) == LOCKED_EN


def test_failures_from_one_address_lock_every_username_from_it(manager: User) -> None:
    User.objects.create_superuser("outro", "outro@example.com", PASSWORD)
    guesser = _client("10.0.0.66")
    for name in ("ana", "bruno", "carla"):
        assert _login(guesser, name, "wrong") == INVALID_EN

    assert _login(guesser, "gerente", PASSWORD) == LOCKED_EN
    assert _login(_client("10.0.0.66"), "outro", PASSWORD) == LOCKED_EN
    assert _login(_client("10.0.0.1"), "gerente", PASSWORD) == "logged in"


def test_a_successful_login_clears_the_usernames_failures(manager: User) -> None:
    client = _client("10.0.0.1")
    for _ in range(2):
        assert _login(client, "gerente", "wrong") == INVALID_EN
    assert _login(client, "gerente", PASSWORD) == "logged in"
    client.logout()

    other = _client("10.0.0.2")
    for _ in range(2):
        assert _login(other, "gerente", "wrong") == INVALID_EN
    assert _login(other, "gerente", PASSWORD) == "logged in"


def test_the_lock_ends_with_its_window(manager: User) -> None:
    for _ in range(3):
        _login(_client("10.0.0.66"), "gerente", "wrong")
    start = timezone.now()

    with time_machine.travel(start + timedelta(seconds=890), tick=False):
        assert _login(_client("10.0.0.1"), "gerente", PASSWORD) == (
            "Too many failed login attempts. Try again in 1 minute(s)."
        )
    with time_machine.travel(start + timedelta(seconds=901), tick=False):
        assert _login(_client("10.0.0.1"), "gerente", PASSWORD) == "logged in"


def test_the_lockout_message_is_in_portuguese_by_default(manager: User) -> None:
    client = _client("10.0.0.66")
    for _ in range(3):
        _login(client, "gerente", "wrong")

    response = client.post(
        reverse("admin:login"), {"username": "gerente", "password": PASSWORD, "next": "/admin/"}
    )

    assert "Muitas tentativas de login sem sucesso. Tente de novo em 15 minuto(s)." in (
        response.content.decode()
    )


def test_behind_the_tls_proxy_the_address_the_proxy_saw_is_counted(
    manager: User, settings: Any
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = _client("127.0.0.1")
    for name in ("ana", "bruno", "carla"):
        _login(proxy, name, "wrong", x_forwarded_for="spoofed, 203.0.113.9")

    assert _login(proxy, "gerente", PASSWORD, x_forwarded_for="203.0.113.9") == LOCKED_EN
    assert _login(proxy, "gerente", PASSWORD, x_forwarded_for="spoofed, 198.51.100.4") == (
        "logged in"
    )


def test_a_lockout_is_logged_without_the_password_or_username(
    manager: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kommo_hub.login_throttle"):
        for _ in range(3):
            _login(_client("10.0.0.66"), "gerente", "wrong-password-xyz")

    assert [(r.getMessage(), r.subject) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("admin login locked out", "user"),
        ("admin login locked out", "ip"),
    ]
    assert "wrong-password-xyz" not in caplog.text
    assert "gerente" not in caplog.text
