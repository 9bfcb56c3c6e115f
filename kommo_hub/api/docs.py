"""The OpenAPI schema and its browsable docs: for staff (admin login) and API-key holders."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.views import APIView

from kommo_hub.api.auth import ApiKeyAuthentication, HasApiKey


class StaffOrApiKey(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return HasApiKey().has_permission(request, view) or IsAdminUser().has_permission(
            request, view
        )


class SchemaView(SpectacularAPIView):
    authentication_classes = [SessionAuthentication, ApiKeyAuthentication]
    permission_classes = [StaffOrApiKey]


class DocsView(SpectacularSwaggerView):
    authentication_classes = [SessionAuthentication, ApiKeyAuthentication]
    permission_classes = [StaffOrApiKey]
