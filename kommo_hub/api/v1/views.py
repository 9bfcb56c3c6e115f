"""/api/v1/: the leads and assignments lists and the summary reports, JSON or `?format=csv`.

Read-only. Auth: `Authorization: Api-Key <key>` (a reporting key) or a staff session; a
salesperson's session sees only their own leads and numbers (kommo_hub.api.v1.access).
The summaries are kommo_hub.reporting.selectors, the same functions the admin dashboard uses.
"""

from collections.abc import Callable
from typing import Any

from django.db.models import F, FilteredRelation, Q, QuerySet
from django_filters.rest_framework import DjangoFilterBackend  # type: ignore[import-untyped]
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kommo_hub.api.auth import ApiKeyAuthentication
from kommo_hub.api.v1 import serializers as s
from kommo_hub.api.v1.access import ReportingAccess, scope_of, visible
from kommo_hub.api.v1.filters import AssignmentFilter, LeadFilter
from kommo_hub.api.v1.renderers import CSVRenderer
from kommo_hub.models import Lead
from kommo_hub.reporting import selectors
from routing.models import Assignment


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M` (50 by default, at most 500); a CSV export is every row."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int | None:
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return None
        return super().get_page_size(request)


class ReportingView(APIView):
    # The key first: no credentials is a 401 naming the Api-Key scheme.
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [ReportingAccess]
    renderer_classes = [JSONRenderer, CSVRenderer]
    uniform_errors = True  # kommo_hub.api.v1.errors


class LeadList(ReportingView, ListAPIView[Lead]):
    """Leads created in the period, newest first, with their current area and salesperson."""

    serializer_class = s.LeadSerializer
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = LeadFilter

    def get_queryset(self) -> QuerySet[Lead]:
        leads = (
            Lead.objects.annotate(
                current=FilteredRelation("assignments", condition=Q(assignments__is_current=True))
            )
            .annotate(
                current_area_id=F("current__area_id"),
                current_area_name=F("current__area__name"),
                current_salesperson_id=F("current__salesperson_id"),
                current_salesperson_name=F("current__salesperson__name"),
                current_status=F("current__status"),
            )
            .order_by("-created_at", "-pk")
        )
        return visible(self.request, leads, "")


class AssignmentList(ReportingView, ListAPIView[Assignment]):
    """Routing decisions, newest first, each with the explanation of how it was decided."""

    serializer_class = s.AssignmentSerializer
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = AssignmentFilter

    def get_queryset(self) -> QuerySet[Assignment]:
        assignments = Assignment.objects.select_related("lead", "area", "salesperson").order_by(
            "-decided_at", "-pk"
        )
        return visible(self.request, assignments, "lead")


class SummaryView(ReportingView):
    query_serializer: type = s.PeriodSerializer
    report: Callable[..., Any]

    def get(self, request: Request) -> Response:
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        start, end = params.pop("from"), params.pop("to")
        results = type(self).report(
            start=start, end=end, salesperson_id=scope_of(request), **params
        )
        return Response({"from": start, "to": end, "results": results})


def _summary(
    name: str,
    report: Callable[..., Any],
    row: type,
    *,
    many: bool = True,
    query: type | None = None,
) -> type[SummaryView]:
    query = query or s.PeriodSerializer
    response = s.report_serializer(f"{name}Report", row, many=many)

    @extend_schema(parameters=[query], responses=response, operation_id=f"report_{name}")
    def get(self: SummaryView, request: Request) -> Response:
        return SummaryView.get(self, request)

    view = type(
        name,
        (SummaryView,),
        {
            "report": staticmethod(report),
            "query_serializer": query,
            "__doc__": report.__doc__,
            "get": get,
        },
    )
    return view


LeadsPerDay = _summary(
    "leads_per_day",
    selectors.leads_per_day,
    s.DayCountSerializer,
    query=s.LeadsPerDayQuerySerializer,
)
Distribution = _summary("distribution", selectors.distribution, s.DistributionRowSerializer)
SpeedToLead = _summary("speed_to_lead", selectors.speed_to_lead, s.SpeedRowSerializer)
BotActivity = _summary("bot_activity", selectors.bot_activity, s.BotActivitySerializer, many=False)
Appointments = _summary("appointments", selectors.appointments_summary, s.AppointmentRowSerializer)
Funnel = _summary("funnel", selectors.funnel, s.FunnelRowSerializer)
