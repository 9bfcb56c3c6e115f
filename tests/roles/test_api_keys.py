"""API keys: a scope each (reporting is read-only, scheduling is n8n's), created in the admin with
the key shown once and stored hashed, revoked from the admin."""

import hashlib
import io
import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIRequestFactory

from kommo_hub.api.auth import (
    HasReportingKey,
    HasSchedulingKey,
    ReportingKeyReadOnly,
    has_scope,
)
from kommo_hub.models import ApiKey, ApiKeyScope
from tests.roles.support import Team

pytestmark = pytest.mark.django_db

SLOTS = "/api/scheduling/slots/"
BOOK = "/api/scheduling/appointments/"
REPORT = "/api/v1/leads/"


def api(scope: str) -> Client:
    _api_key, key = ApiKey.generate(name=f"chave {scope}", scope=scope)
    return Client(headers={"authorization": f"Api-Key {key}"})


def test_a_reporting_key_cannot_reach_the_scheduling_api(team: Team) -> None:
    client = api(ApiKeyScope.REPORTING)

    read = client.get(SLOTS)
    write = client.post(BOOK, data={}, content_type="application/json")

    assert (read.status_code, write.status_code) == (403, 403)
    assert read.json() == {"detail": "This API key may not use this API (wrong scope)."}


def test_a_scheduling_key_still_reaches_the_scheduling_api(team: Team) -> None:
    response = api(ApiKeyScope.SCHEDULING).get(f"/api/scheduling/slots/?lead={team.lead.pk}")

    assert response.status_code == 200


def test_a_reporting_key_cannot_write_to_the_reporting_api(team: Team) -> None:
    client = api(ApiKeyScope.REPORTING)

    responses = [
        client.post(REPORT, data={}, content_type="application/json").status_code,
        client.put(REPORT, data={}, content_type="application/json").status_code,
        client.delete(REPORT).status_code,
    ]

    assert all(code in (403, 405) for code in responses), responses


def test_a_scheduling_key_cannot_read_the_reporting_api(team: Team) -> None:
    response = api(ApiKeyScope.SCHEDULING).get(REPORT)

    assert response.status_code == 403


def test_a_revoked_key_is_refused_with_401(team: Team) -> None:
    api_key, key = ApiKey.generate(name="n8n")
    ApiKey.objects.filter(pk=api_key.pk).update(active=False)
    client = Client(headers={"authorization": f"Api-Key {key}"})

    assert (client.get(SLOTS).status_code, client.get(REPORT).status_code) == (401, 401)


def request_with(method: str, scope: str | None) -> Any:
    request = getattr(APIRequestFactory(), method)("/api/v1/anything/")
    request.method = method.upper()
    request.auth = ApiKey(name="x", scope=scope) if scope else None
    return request


@pytest.mark.parametrize(
    ("method", "scope", "allowed"),
    [
        ("get", ApiKeyScope.REPORTING, True),
        ("head", ApiKeyScope.REPORTING, True),
        ("options", ApiKeyScope.REPORTING, True),
        ("post", ApiKeyScope.REPORTING, False),
        ("patch", ApiKeyScope.REPORTING, False),
        ("delete", ApiKeyScope.REPORTING, False),
        ("get", ApiKeyScope.SCHEDULING, False),
        ("post", ApiKeyScope.SCHEDULING, False),
        ("get", None, False),
    ],
)
def test_reporting_key_read_only_allows_only_safe_methods_with_a_reporting_key(
    method: str, scope: str | None, allowed: bool
) -> None:
    assert ReportingKeyReadOnly().has_permission(request_with(method, scope), None) is allowed  # type: ignore[arg-type]


def test_the_scope_permissions_accept_only_their_own_scope() -> None:
    reporting, scheduling = (
        request_with("get", ApiKeyScope.REPORTING),
        request_with("get", ApiKeyScope.SCHEDULING),
    )

    results = [
        HasReportingKey().has_permission(reporting, None),  # type: ignore[arg-type]
        HasReportingKey().has_permission(scheduling, None),  # type: ignore[arg-type]
        HasSchedulingKey().has_permission(scheduling, None),  # type: ignore[arg-type]
        HasSchedulingKey().has_permission(reporting, None),  # type: ignore[arg-type]
        has_scope("reporting")().has_permission(reporting, None),  # type: ignore[arg-type]
    ]

    assert results == [True, False, True, False, True]
    with pytest.raises(ValueError, match="unknown API key scope: 'admin'"):
        has_scope("admin")


def test_create_api_key_takes_a_scope_and_defaults_to_scheduling() -> None:
    call_command(
        "create_api_key",
        "painel",
        "--scope",
        "reporting",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    call_command("create_api_key", "n8n", stdout=io.StringIO(), stderr=io.StringIO())

    assert list(ApiKey.objects.order_by("pk").values_list("name", "scope")) == [
        ("painel", "reporting"),
        ("n8n", "scheduling"),
    ]


def test_a_key_added_in_the_admin_is_shown_once_and_stored_only_hashed(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        reverse("admin:kommo_hub_apikey_add"),
        {"name": "Painel BI", "scope": "reporting"},
        follow=True,
    )

    html = response.content.decode()
    shown = re.search(r"<code>([0-9a-f]{12}\.[A-Za-z0-9_-]+)</code>", html)
    assert response.redirect_chain == [(reverse("admin:kommo_hub_apikey_changelist"), 302)]
    assert shown is not None
    key = shown.group(1)
    assert "API key created. Copy it now: it is not shown again." in html
    stored = ApiKey.objects.get()
    assert (stored.name, stored.scope, stored.active) == ("Painel BI", "reporting", True)
    assert key.startswith(f"{stored.prefix}.")
    assert stored.hashed_key == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(value) for value in ApiKey.objects.values().get().values())
    again = admin_client.get(reverse("admin:kommo_hub_apikey_changelist"))
    page = admin_client.get(reverse("admin:kommo_hub_apikey_change", args=[stored.pk]))
    assert key not in again.content.decode()
    assert key not in page.content.decode()
    works = Client(headers={"authorization": f"Api-Key {key}"}).get(SLOTS)
    assert works.status_code == 403  # a reporting key: authenticated, but not for scheduling


def test_the_admin_form_defaults_to_a_reporting_key(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:kommo_hub_apikey_add"))

    assert response.context["adminform"].form.fields["scope"].initial == "reporting"


def test_the_revoke_action_switches_the_selected_keys_off(admin_client: Client) -> None:
    revoked, _ = ApiKey.generate(name="antiga")
    ApiKey.generate(name="n8n")

    response = admin_client.post(
        reverse("admin:kommo_hub_apikey_changelist"),
        {"action": "revoke", "_selected_action": [str(revoked.pk)]},
    )

    assert response.status_code == 302
    assert dict(ApiKey.objects.values_list("name", "active")) == {"antiga": False, "n8n": True}
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1 API key revoked."]


def test_a_salesperson_cannot_open_the_api_keys(client: Client, team: Team) -> None:
    client.force_login(team.carlos.user)

    response = client.get(reverse("admin:kommo_hub_apikey_changelist"))

    assert response.status_code == 403
