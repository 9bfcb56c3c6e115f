"""The agenda in the admin: appointments (with their reminders and interaction history), agenda
blocks, interaction history and the Supabase sync cursors.

Who sees what (like bot control's conversations): superusers and users with the permission
`scheduling.view_all_appointments` see every salesperson's agenda; a salesperson (a staff user
linked by Salesperson.user) sees only their own appointments, agenda blocks and the interaction
history of their appointments and current leads; nobody else sees these pages. Another
salesperson's appointment does not exist for them (404), and a selected id that is not theirs is
not part of what an action changes.

The agenda's home is Supabase: these pages are read-only mirrors. Marking a meeting done or
no-show (list actions) goes through scheduling.booking (Supabase first when configured), tells
Kommo, and settles the meeting's remaining reminders.

Reminders: each appointment lists its reminders (scheduled, queued, sent, failed with why,
cancelled with why) next to the n8n action each became and its live status, so a reminder that
did not go out is visible on the meeting itself.
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from kommo_hub.admin import ReadOnlyAdmin
from routing.models import Area, AreaMembership, Assignment, Salesperson
from scheduling.models import (
    AgendaBlock,
    Appointment,
    AppointmentStatus,
    Interaction,
    Reminder,
    ReminderStatus,
    SyncCursor,
)
from scheduling.reminders import FIXED_REASONS

VIEW_ALL = "scheduling.view_all_appointments"


def sees_all(user: Any) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm(VIEW_ALL)))


def salesperson_of(request: HttpRequest) -> Salesperson | None:
    """The salesperson linked to the logged-in user (looked up once per request)."""
    if not hasattr(request, "_scheduling_salesperson"):
        user = request.user
        person = (
            Salesperson.objects.filter(user_id=user.pk).first()
            if user.is_authenticated and user.is_active and user.is_staff
            else None
        )
        request._scheduling_salesperson = person  # type: ignore[attr-defined]
    return request._scheduling_salesperson  # type: ignore[attr-defined]


def offset_text(minutes: int) -> str:
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def reason_text(detail: str) -> str:
    """A reminder's reason, translated when it is one of the fixed texts."""
    return gettext(detail) if detail in FIXED_REASONS else detail


class OwnAgendaAdmin(admin.ModelAdmin):
    """Read-only; everyone sees what `get_queryset` gives them, managers everything."""

    def _may_use(self, request: HttpRequest) -> bool:
        return sees_all(request.user) or salesperson_of(request) is not None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_use(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self._may_use(request):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def own(self, queryset: QuerySet[Any], person: Salesperson) -> QuerySet[Any]:
        return queryset.filter(salesperson=person)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if sees_all(request.user):
            return queryset
        person = salesperson_of(request)
        if person is None:
            return queryset.none()
        return self.own(queryset, person)

    def visible(self, request: HttpRequest, object_id: str) -> Any:
        """The row if this user may see it: 403 without the page at all, 404 for a row that is
        not theirs (or does not exist)."""
        if not self._may_use(request):
            raise PermissionDenied
        try:
            pk = int(unquote(object_id))
        except ValueError as exc:
            raise Http404 from exc
        found = self.get_queryset(request).filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self.visible(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self.visible(request, object_id)
        return super().history_view(request, object_id, extra_context)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # whoever may see the appointment sees these


class ReminderInline(ReadOnlyInline):
    model = Reminder
    fields = readonly_fields = (
        "before",
        "appointment_starts_at",
        "due_at",
        "state",
        "why",
        "n8n_action",
        "n8n_reported",
    )
    ordering = ["-appointment_starts_at", "-offset_minutes"]
    verbose_name_plural = _("reminders")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reminder]:
        return super().get_queryset(request).select_related("action")

    @admin.display(description=_("before the start"))
    def before(self, obj: Reminder) -> str:
        return offset_text(obj.offset_minutes)

    @admin.display(description=_("state"))
    def state(self, obj: Reminder) -> str:
        label = str(ReminderStatus(obj.status).label)
        if obj.status == ReminderStatus.SCHEDULED and obj.action_id is not None:
            label = gettext("queued")
        if obj.status == ReminderStatus.FAILED:
            return format_html("<strong style='color:#ba2121'>{}</strong>", label)
        return label

    @admin.display(description=_("why"))
    def why(self, obj: Reminder) -> str:
        return reason_text(obj.detail) or "-"

    @admin.display(description=_("n8n action"))
    def n8n_action(self, obj: Reminder) -> str:
        action = obj.action
        if action is None:
            return "-"
        status = action.get_status_display()
        if action.held_reason:
            status = f"{status}: {action.held_reason}"
        return format_html(
            "<a href='{}'>#{}</a> {}",
            reverse("admin:kommo_hub_outboundaction_change", args=[action.pk]),
            action.pk,
            status,
        )

    @admin.display(description=_("n8n reported"))
    def n8n_reported(self, obj: Reminder) -> str:
        action = obj.action
        if action is None or not action.callback_status:
            return "-"
        error = action.result.get("error") if isinstance(action.result, dict) else None
        return f"{action.callback_status}: {error}" if error else action.callback_status


class InteractionInline(ReadOnlyInline):
    model = Interaction
    fields = readonly_fields = ("happened_at", "kind", "text")
    ordering = ["-happened_at", "-pk"]
    verbose_name_plural = _("interaction history")


class AreaFilter(admin.SimpleListFilter):
    """The lead's current area, or one of the salesperson's areas."""

    title = _("area")
    parameter_name = "area"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        return [
            (str(pk), name) for pk, name in Area.objects.order_by("name").values_list("pk", "name")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        by_lead = Assignment.objects.filter(
            lead_id=OuterRef("lead_id"), is_current=True, area_id=int(value)
        )
        by_person = AreaMembership.objects.filter(
            salesperson_id=OuterRef("salesperson_id"), area_id=int(value), active=True
        )
        return queryset.filter(Q(Exists(by_lead)) | Q(Exists(by_person)))


class ReminderStateFilter(admin.SimpleListFilter):
    title = _("reminders")
    parameter_name = "reminders"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        return [
            (ReminderStatus.FAILED, _("some failed")),
            (ReminderStatus.SCHEDULED, _("some still to send")),
            (ReminderStatus.SENT, _("some sent")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() not in (
            ReminderStatus.FAILED,
            ReminderStatus.SCHEDULED,
            ReminderStatus.SENT,
        ):
            return queryset
        reminders = Reminder.objects.filter(appointment_id=OuterRef("pk"), status=self.value())
        return queryset.filter(Exists(reminders))


@admin.register(Appointment)
class AppointmentAdmin(OwnAgendaAdmin):
    list_display = [
        "starts_at",
        "ends_at",
        "salesperson",
        "lead",
        "lead_phone",
        "status",
        "reminders_state",
        "source",
    ]
    list_display_links = ["starts_at"]
    list_filter = [
        "status",
        AreaFilter,
        ("salesperson", admin.RelatedOnlyFieldListFilter),
        ReminderStateFilter,
    ]
    date_hierarchy = "starts_at"
    search_fields = [
        "lead__name",
        "lead__phone",
        "lead__contact__name",
        "lead__contact__phone",
        "title",
        "=kommo_lead_id",
    ]
    list_select_related = ["salesperson", "lead"]
    ordering = ["starts_at", "pk"]
    fields = readonly_fields = (
        "salesperson",
        "lead",
        "starts_at",
        "ends_at",
        "status",
        "title",
        "notes",
        "source",
        "kommo_lead_id",
        "kommo_contact_id",
        "supabase_id",
        "supabase_updated_at",
        "created_at",
        "updated_at",
    )
    inlines = [ReminderInline, InteractionInline]
    actions = ["mark_done", "mark_no_show"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Appointment]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("reminders", queryset=Reminder.objects.order_by("-offset_minutes"))
            )
        )

    @admin.display(description=_("phone"), ordering="lead__phone")
    def lead_phone(self, obj: Appointment) -> str:
        return obj.lead.phone if obj.lead is not None and obj.lead.phone else "-"

    @admin.display(description=_("reminders"))
    def reminders_state(self, obj: Appointment) -> str:
        """The reminders of the current start: "24 h: sent · 1 h: scheduled"."""
        parts = []
        for reminder in obj.reminders.all():
            if reminder.appointment_starts_at != obj.starts_at:
                continue
            state = str(ReminderStatus(reminder.status).label)
            if reminder.status == ReminderStatus.SCHEDULED and reminder.action_id is not None:
                state = gettext("queued")
            parts.append(f"{offset_text(reminder.offset_minutes)}: {state}")
        return " · ".join(parts) or "-"

    # --- Marking a meeting done / no-show ------------------------------------------------------

    def has_mark_permission(self, request: HttpRequest) -> bool:
        """Each appointment still has to be one the user sees (get_queryset)."""
        return self._may_use(request)

    @admin.action(description=_("Mark as done"), permissions=["mark"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[Appointment]) -> None:
        self._mark(request, queryset, AppointmentStatus.DONE)

    @admin.action(description=_("Mark as no-show"), permissions=["mark"])
    def mark_no_show(self, request: HttpRequest, queryset: QuerySet[Appointment]) -> None:
        self._mark(request, queryset, AppointmentStatus.NO_SHOW)

    def _mark(self, request: HttpRequest, queryset: QuerySet[Appointment], status: str) -> None:
        # Imported here: the coordinator imports the outbox, which the admin's import must not.
        from kommo_hub.flows.scheduling import appointment_status_sync
        from scheduling.booking import BookingError, appointment_mark
        from scheduling.reminders import reminders_plan

        def then(appointment: Appointment) -> None:
            appointment_status_sync(appointment=appointment)
            reminders_plan(appointment=appointment)

        marked = unchanged = 0
        for appointment in queryset:  # only the ones this user sees
            try:
                result = appointment_mark(appointment_id=appointment.pk, status=status, then=then)
            except BookingError as exc:
                self.message_user(
                    request,
                    gettext("%(appointment)s: %(error)s")
                    % {"appointment": appointment, "error": exc},
                    messages.WARNING,
                )
                continue
            if result.changed:
                marked += 1
            else:
                unchanged += 1
        label = AppointmentStatus(status).label
        if marked:
            self.message_user(
                request,
                ngettext(
                    "%(count)d appointment marked %(status)s.",
                    "%(count)d appointments marked %(status)s.",
                    marked,
                )
                % {"count": marked, "status": label},
                messages.SUCCESS,
            )
        if unchanged:
            self.message_user(
                request,
                ngettext(
                    "%(count)d appointment already was %(status)s.",
                    "%(count)d appointments already were %(status)s.",
                    unchanged,
                )
                % {"count": unchanged, "status": label},
                messages.INFO,
            )


@admin.register(AgendaBlock)
class AgendaBlockAdmin(OwnAgendaAdmin):
    list_display = ["starts_at", "ends_at", "salesperson", "kind", "reason", "deleted"]
    list_filter = ["kind", "deleted", ("salesperson", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "starts_at"
    search_fields = ["reason", "salesperson__name"]
    list_select_related = ["salesperson"]
    fields = readonly_fields = (
        "salesperson",
        "kind",
        "starts_at",
        "ends_at",
        "reason",
        "deleted",
        "supabase_id",
        "supabase_updated_at",
    )


@admin.register(Interaction)
class InteractionAdmin(OwnAgendaAdmin):
    list_display = ["happened_at", "lead", "kind", "short_text", "appointment"]
    list_filter = ["kind"]
    date_hierarchy = "happened_at"
    search_fields = ["text", "kind", "lead__name", "lead__phone"]
    list_select_related = ["lead", "appointment__salesperson"]
    fields = readonly_fields = (
        "happened_at",
        "lead",
        "appointment",
        "kind",
        "text",
        "data",
        "supabase_id",
        "supabase_updated_at",
    )

    def own(self, queryset: QuerySet[Any], person: Salesperson) -> QuerySet[Any]:
        current = Assignment.objects.filter(
            lead_id=OuterRef("lead_id"), is_current=True, salesperson=person
        )
        return queryset.filter(Q(appointment__salesperson=person) | Q(Exists(current)))

    @admin.display(description=_("text"))
    def short_text(self, obj: Interaction) -> str:
        return obj.text if len(obj.text) <= 80 else f"{obj.text[:79]}…"


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyAdmin):
    """Where the Supabase sync of each table stands (Django's view permission on sync cursors)."""

    list_display = ["table", "updated_at", "last_id", "rows_synced", "last_run_at", "error"]
    fields = readonly_fields = (
        "table",
        "updated_at",
        "last_id",
        "rows_synced",
        "last_run_at",
        "last_error",
    )

    @admin.display(description=_("last error"))
    def error(self, obj: SyncCursor) -> str:
        return obj.last_error[:120] or "-"
