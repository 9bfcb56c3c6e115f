"""The managers' routing admin: areas, people and their calendars, rules, and why a lead went where.

Simulate and backtest (linked from the rules list) run the real decision without writing.
Every admin edit that can free capacity drains the waiting queue once the edit commits.
"""

from dataclasses import dataclass
from datetime import time
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from kommo_hub.admin import OwnLeadsAdminMixin, ReadOnlyAdmin
from routing.admin_html import coverage_lines, decision_html, explanation_html
from routing.calendar import coverage_gaps
from routing.conditions import facts_from_sample, lead_facts
from routing.forms import BacktestForm, RoutingRuleForm, SimulateForm
from routing.models import (
    Area,
    AreaMembership,
    Assignment,
    AssignmentStatus,
    CompanyHoliday,
    ConditionField,
    RoutingRule,
    RuleCondition,
    Salesperson,
    TimeOff,
    WorkingHours,
)
from routing.preview import BacktestRow, route_simulate, routing_backtest
from routing.selectors import open_leads_q
from routing.services import backlog_drain

# --- The waiting queue drains as soon as an edit commits -----------------------------------------


def _drain_and_sync() -> None:
    # Imported here: the flows import the outbox, which the admin's import must not depend on.
    from kommo_hub.flows.leads import assignment_sync

    backlog_drain(then=lambda a: assignment_sync(assignment=a, source_event=None))


def backlog_drain_on_commit() -> None:
    """Waiting leads go out at once when a manager adds hours, people or members."""
    transaction.on_commit(_drain_and_sync, robust=True)


class DrainOnSaveMixin(admin.ModelAdmin):
    def save_related(
        self, request: HttpRequest, form: BaseForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        backlog_drain_on_commit()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        backlog_drain_on_commit()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        backlog_drain_on_commit()


class AreaMembershipInline(admin.TabularInline):
    model = AreaMembership
    fields = ("salesperson", "weight", "priority", "active")
    extra = 0


@admin.register(Area)
class AreaAdmin(DrainOnSaveMixin):
    list_display = [
        "name",
        "slug",
        "active",
        "strategy",
        "is_default",
        "members",
        "fallback_salesperson",
        "reply_sla_minutes",
    ]
    list_filter = ["active", "strategy"]
    list_select_related = ["fallback_salesperson"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    inlines = [AreaMembershipInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "active",
                    "is_default",
                    "strategy",
                    "sticky_owner",
                    "fallback_salesperson",
                    "reply_sla_minutes",
                ]
            },
        ),
        (
            _("Kommo and n8n"),
            {
                "fields": [
                    "kommo_pipeline_id",
                    "kommo_status_id",
                    "description",
                    "ai_instructions",
                    "first_message_hint",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Area]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                members_count=Count(
                    "memberships",
                    filter=Q(memberships__active=True, memberships__salesperson__active=True),
                )
            )
        )

    @admin.display(description=_("members"), ordering="members_count")
    def members(self, obj: Area) -> int:
        return int(getattr(obj, "members_count", 0))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        area = self.get_object(request, unquote(object_id))
        if area is not None and self.has_view_or_change_permission(request, area):
            extra_context["coverage"] = coverage_lines(coverage_gaps(area=area))
        return super().change_view(request, object_id, form_url, extra_context)


# --- Salespeople -------------------------------------------------------------------------------


class WorkingHoursInline(admin.TabularInline):
    model = WorkingHours
    fields = ("weekday", "starts", "ends")
    extra = 0


class TimeOffInline(admin.TabularInline):
    model = TimeOff
    fields = ("kind", "first_day", "last_day", "note")
    extra = 0


class SalespersonMembershipInline(admin.TabularInline):
    model = AreaMembership
    fields = ("area", "weight", "priority", "active")
    extra = 0


STANDARD_WEEK = [(time(9), time(12)), (time(13), time(18))]


@admin.register(Salesperson)
class SalespersonAdmin(DrainOnSaveMixin):
    list_display = [
        "name",
        "active",
        "kommo_user_id",
        "is_duty",
        "caps",
        "areas",
        "open_leads",
        "last_assigned_at",
    ]
    list_filter = ["active", "is_duty", ("memberships__area", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "email", "phone", "=kommo_user_id"]
    inlines = [WorkingHoursInline, TimeOffInline, SalespersonMembershipInline]
    readonly_fields = ["last_assigned_at"]
    actions = ["standard_week"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Salesperson]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_leads_count=Count(
                    "assignments", filter=open_leads_q("assignments__"), distinct=True
                )
            )
            .prefetch_related("memberships__area")
        )

    @admin.display(description=_("caps (open / per day)"))
    def caps(self, obj: Salesperson) -> str:
        if obj.max_open_leads is None and obj.max_new_leads_per_day is None:
            return "—"
        open_cap = "—" if obj.max_open_leads is None else str(obj.max_open_leads)
        day_cap = "—" if obj.max_new_leads_per_day is None else str(obj.max_new_leads_per_day)
        return f"{open_cap} / {day_cap}"

    @admin.display(description=_("areas"))
    def areas(self, obj: Salesperson) -> str:
        return ", ".join(m.area.name for m in obj.memberships.all() if m.active) or "—"

    @admin.display(description=_("open leads"), ordering="open_leads_count")
    def open_leads(self, obj: Salesperson) -> int:
        return int(getattr(obj, "open_leads_count", 0))

    @admin.action(
        description=_("Set Mon–Fri 09:00–12:00 and 13:00–18:00 (replaces their working hours)"),
        permissions=["change"],
    )
    def standard_week(self, request: HttpRequest, queryset: QuerySet[Salesperson]) -> None:
        people = list(queryset)
        with transaction.atomic():
            WorkingHours.objects.filter(salesperson__in=people).delete()
            WorkingHours.objects.bulk_create(
                WorkingHours(salesperson=person, weekday=day, starts=starts, ends=ends)
                for person in people
                for day in range(5)
                for starts, ends in STANDARD_WEEK
            )
            backlog_drain_on_commit()
        count = len(people)
        self.message_user(
            request,
            ngettext(
                "Standard week set for %d salesperson.",
                "Standard week set for %d salespeople.",
                count,
            )
            % count,
            messages.SUCCESS,
        )


@admin.register(CompanyHoliday)
class CompanyHolidayAdmin(DrainOnSaveMixin):
    list_display = ["date", "name"]
    search_fields = ["name"]
    date_hierarchy = "date"


# --- Rules -------------------------------------------------------------------------------------


class RuleConditionInline(admin.TabularInline):
    model = RuleCondition
    fields = ("field", "field_name", "operator", "value")
    extra = 1


def condition_text(condition: RuleCondition) -> str:
    subject = (
        condition.field_name
        if condition.field == ConditionField.LEAD_FIELD
        else condition.get_field_display()
    )
    return f"{subject} {condition.get_operator_display()} “{condition.value}”"


@dataclass
class BacktestLine:
    row: BacktestRow
    # Same area (or the same rule's salesperson) as it went to: a different person there is the
    # rotation moving on, not a rule change.
    same_target: bool


def _same_target(row: BacktestRow) -> bool:
    actual, target = row.actual, row.decision.target
    if actual is None:
        return False
    area_id = target.area.pk if target.area is not None else None
    return (actual.area_id, actual.target_salesperson_id) == (area_id, target.salesperson_id)


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["position", "name", "active", "target", "conditions_summary", "updated_at"]
    list_display_links = ["name"]
    list_editable = ["position", "active"]
    list_filter = ["active", "target_area", "target_salesperson"]
    list_select_related = ["target_area", "target_salesperson"]
    search_fields = ["name", "conditions__value"]
    ordering = ["position", "pk"]
    form = RoutingRuleForm
    inlines = [RuleConditionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingRule]:
        return super().get_queryset(request).prefetch_related("conditions")

    @admin.display(description=_("target"))
    def target(self, obj: RoutingRule) -> str:
        if obj.target_area is not None:
            return gettext("area: %(name)s") % {"name": obj.target_area}
        if obj.target_salesperson is not None:
            return gettext("salesperson: %(name)s") % {"name": obj.target_salesperson}
        return "—"

    @admin.display(description=_("conditions"))
    def conditions_summary(self, obj: RoutingRule) -> str:
        texts = [condition_text(c) for c in obj.conditions.all()]
        return gettext(" and ").join(texts) if texts else gettext("always")

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "simulate/",
                self.admin_site.admin_view(self.simulate_view),
                name="routing_routingrule_simulate",
            ),
            path(
                "backtest/",
                self.admin_site.admin_view(self.backtest_view),
                name="routing_routingrule_backtest",
            ),
        ]
        return own + super().get_urls()

    def _tool_context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
        }

    def simulate_view(self, request: HttpRequest) -> HttpResponse:
        """What would happen to a lead now (or at a chosen time). Writes nothing."""
        context = self._tool_context(request, gettext("Simulate a lead"))
        form = SimulateForm(request.GET or None)
        if form.is_bound and form.is_valid():
            lead, at = form.chosen_lead, form.when()
            facts = lead_facts(lead) if lead is not None else facts_from_sample(form.sample())
            decision = route_simulate(facts=facts, lead=lead, at=at)
            context |= {
                "decision": decision,
                "lead": lead,
                "at": at,
                "why": decision_html(decision),
            }
        context["form"] = form
        return TemplateResponse(request, "admin/routing/simulate.html", context)

    def backtest_view(self, request: HttpRequest) -> HttpResponse:
        """Who would have got each of the last N leads under today's rules. Writes nothing."""
        context = self._tool_context(request, gettext("Backtest the rules"))
        form = BacktestForm(request.GET or {"last": BacktestForm.base_fields["last"].initial})
        if form.is_valid():
            rows = [
                BacktestLine(row=row, same_target=_same_target(row))
                for row in routing_backtest(last=form.cleaned_data["last"])
            ]
            context |= {
                "rows": rows,
                "same_count": sum(1 for line in rows if line.row.same),
                "different_count": sum(1 for line in rows if not line.row.same),
                "rotation_count": sum(1 for line in rows if not line.row.same and line.same_target),
                "waiting_count": sum(
                    1 for line in rows if line.row.decision.salesperson_id is None
                ),
            }
        context["form"] = form
        return TemplateResponse(request, "admin/routing/backtest.html", context)


# --- Assignments -------------------------------------------------------------------------------


class WaitingFilter(admin.SimpleListFilter):
    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("waiting", _("Waiting"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "waiting":
            return queryset.filter(is_current=True, status=AssignmentStatus.WAITING)
        return queryset


@admin.register(Assignment)
class AssignmentAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    """A salesperson sees the assignments (history included) of the leads currently theirs."""

    list_display = [
        "decided_at",
        "lead",
        "salesperson",
        "area",
        "rule_name",
        "kind",
        "status",
        "is_current",
        "sla_due_at",
        "responded_at",
    ]
    list_filter = [WaitingFilter, "area", "salesperson", "kind", "status", "is_current"]
    list_select_related = ["lead", "salesperson", "area"]
    search_fields = ["lead__name", "lead__phone", "lead__email", "=lead__kommo_lead_id"]
    date_hierarchy = "decided_at"
    fieldsets = [
        (None, {"fields": ["why", "simulate_link"]}),
        (
            _("Assignment"),
            {
                "fields": [
                    "lead",
                    "salesperson",
                    "area",
                    "rule",
                    "rule_name",
                    "target_salesperson",
                    "kind",
                    "status",
                    "strategy",
                    "deciding_step",
                    "is_current",
                    "decided_at",
                    "sla_due_at",
                    "responded_at",
                    "ended_at",
                ]
            },
        ),
    ]
    readonly_fields = ["why", "simulate_link"]

    @admin.display(description=_("why"))
    def why(self, obj: Assignment) -> SafeString:
        return explanation_html(
            obj.explanation or {},
            chosen_id=obj.salesperson_id,
            chosen_name=str(obj.salesperson) if obj.salesperson else "",
        )

    @admin.display(description=_("simulate"))
    def simulate_link(self, obj: Assignment) -> SafeString:
        url = reverse("admin:routing_routingrule_simulate")
        return format_html(
            '<a href="{}?lead_id={}">{}</a>',
            url,
            obj.lead_id,
            gettext("Who would get this lead now?"),
        )
