"""Who may read the reports, and how much of them (the rules are kommo_hub.roles').

A reporting API key (read-only) and a manager's session see everything; a salesperson's session
sees only their own leads and numbers; anyone else is refused.
"""

from typing import Any

from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from kommo_hub import roles
from kommo_hub.api.auth import ReportingKeyReadOnly
from kommo_hub.models import ApiKey


class ReportingAccess(BasePermission):
    """Read-only: a reporting API key, a manager's or a salesperson's session."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, ApiKey):
            return ReportingKeyReadOnly().has_permission(request, view)
        if request.method not in SAFE_METHODS:
            return False
        user = request.user
        return roles.is_manager(user) or roles.salesperson_for(user) is not None


def by_key(request: Request) -> bool:
    return isinstance(request.auth, ApiKey)


def scope_of(request: Request) -> int | None:
    """The salesperson whose data alone the caller may see; None: everyone's."""
    if by_key(request) or not roles.is_scoped_salesperson(request.user):
        return None
    person = roles.salesperson_for(request.user)
    return person.pk if person is not None else None


def visible[M: Any](request: Request, queryset: QuerySet[M], lead_path: str) -> QuerySet[M]:
    """`queryset` narrowed to the caller's rows (roles.restrict); keys see every row."""
    return queryset if by_key(request) else roles.restrict(request.user, queryset, lead_path)
