"""API-key authentication: `Authorization: Api-Key <key>` (see kommo_hub.models.api).

The key is looked up by its prefix and compared by hash in constant time. Neither the key nor
the header ever reaches a log line or an error body.
"""

import re
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from kommo_hub.models import ApiKey, ApiKeyScope

KEYWORD = "Api-Key"
# last_used_at is written at most this often per key (not on every request).
TOUCH_EVERY = timedelta(minutes=1)
MAX_KEY_LENGTH = 200
PREFIX = re.compile(r"[0-9a-f]{1,16}")


class ApiClient:
    """The caller of an API-key request: authenticated, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None
        self.username = f"api-key:{api_key.name}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Invalid Api-Key header: give exactly one key after 'Api-Key'.")
            )
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid API key.")) from None
        prefix, dot, _secret = key.partition(".")
        if not dot or not PREFIX.fullmatch(prefix) or len(key) > MAX_KEY_LENGTH:
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        api_key = ApiKey.objects.filter(prefix=prefix, active=True).first()
        if api_key is None or not api_key.matches(key):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > TOUCH_EVERY:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD  # makes a missing key a 401 with WWW-Authenticate, not a 403


class HasApiKey(BasePermission):
    message = _("An API key is required: header 'Authorization: Api-Key <key>'.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, ApiKey)


class HasScope(BasePermission):
    """An API key of one scope. Use a subclass (HasSchedulingKey, HasReportingKey) or
    `has_scope("reporting")`, which makes one."""

    scope: str = ""
    message = _("This API key may not use this API (wrong scope).")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, ApiKey) and request.auth.scope == self.scope


def has_scope(scope: str) -> type[HasScope]:
    """`permission_classes = [has_scope("reporting")]`."""
    if scope not in ApiKeyScope.values:
        raise ValueError(f"unknown API key scope: {scope!r}")
    return type(f"HasScope_{scope}", (HasScope,), {"scope": scope})


class HasSchedulingKey(HasScope):
    scope = ApiKeyScope.SCHEDULING


class HasReportingKey(HasScope):
    scope = ApiKeyScope.REPORTING


class ReportingKeyReadOnly(BasePermission):
    """The reporting API: a reporting-scope key, and only safe methods (GET, HEAD, OPTIONS).
    Writes are refused with every key, whatever its scope."""

    message = _("The reporting API is read-only and needs a reporting API key.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return (
            request.method in SAFE_METHODS
            and isinstance(request.auth, ApiKey)
            and request.auth.scope == ApiKeyScope.REPORTING
        )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the scheme in the OpenAPI schema (drf-spectacular)."""

    target_class = "kommo_hub.api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` (create one with `manage.py create_api_key <name>`)",
        }
