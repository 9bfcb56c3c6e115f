"""The operators' view of the pipeline: read-only rows, plus replay / retry / release actions."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kommo_hub import roles
from kommo_hub.intake.processing import event_replay
from kommo_hub.login_throttle import ThrottledAdminAuthenticationForm
from kommo_hub.models import (
    Alert,
    ApiKey,
    Contact,
    Conversation,
    InboundEvent,
    InboundRequest,
    Lead,
    LeadNote,
    Message,
    N8nClaim,
    OutboundAction,
    WorkerHeartbeat,
)
from kommo_hub.outbox.services import actions_requeue

# The product's name on every admin page, not Django's (a name: never translated).
admin.site.site_header = admin.site.site_title = "Kommo Hub"
admin.site.login_form = ThrottledAdminAuthenticationForm


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OwnLeadsAdminMixin(admin.ModelAdmin):
    """A salesperson who is not a manager sees only the rows of the leads currently theirs
    (kommo_hub.roles); another's row does not exist for them (404). Everyone else: Django's
    model permissions, unchanged. `lead_path` is the path to the lead ("" on leads)."""

    lead_path = "lead"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return roles.restrict(request.user, super().get_queryset(request), self.lead_path)

    def _own_or_404(self, request: HttpRequest, object_id: str) -> None:
        if not roles.is_scoped_salesperson(request.user):
            return
        try:
            pk = int(unquote(object_id))
        except ValueError as exc:
            raise Http404 from exc
        if not self.get_queryset(request).filter(pk=pk).exists():
            raise Http404

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self._own_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._own_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)


def _pretty_json(value: Any) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap'>{}</pre>",
        json.dumps(value, indent=2, ensure_ascii=False),
    )


class InboundEventInline(admin.TabularInline):
    model = InboundEvent
    fields = readonly_fields = ("event_type", "status", "dedupe_key", "result")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InboundRequest)
class InboundRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "received_at", "accepted", "duplicates", "content_type"]
    list_filter = ["source", "received_at"]
    search_fields = ["=id", "body"]
    readonly_fields = [
        "source",
        "received_at",
        "content_type",
        "remote_addr",
        "accepted",
        "duplicates",
        "headers",
        "body",
    ]
    inlines = [InboundEventInline]


@admin.register(InboundEvent)
class InboundEventAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "source",
        "event_type",
        "status",
        "attempts",
        "lead",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["source", "status", "event_type"]
    search_fields = [
        "=id",
        "external_id",
        "dedupe_key",
        "lead__name",
        "lead__phone",
        "lead__email",
        "=lead__kommo_lead_id",
    ]
    list_select_related = ["lead"]
    readonly_fields = [
        "request",
        "source",
        "event_type",
        "dedupe_key",
        "external_id",
        "status",
        "attempts",
        "next_attempt_at",
        "locked_until",
        "result",
        "last_error",
        "lead",
        "created_at",
        "processed_at",
        "payload_pretty",
        "raw_body",
    ]
    exclude = ["payload"]
    actions = ["replay"]
    date_hierarchy = "created_at"

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: InboundEvent) -> str:
        return _pretty_json(obj.payload)

    @admin.display(description=_("raw body"))
    def raw_body(self, obj: InboundEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.request.body)

    @admin.action(description=_("Replay selected events"))
    def replay(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        count = event_replay(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext("%d event queued again.", "%d events queued again.", count) % count,
            messages.SUCCESS,
        )


class N8nClaimInline(admin.TabularInline):
    """Which n8n execution holds the action (the workflow's duplicate guard)."""

    model = N8nClaim
    fields = readonly_fields = ("state", "execution_id", "attempts", "claimed_at", "updated_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboundAction)
class OutboundActionAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    list_display = [
        "id",
        "target",
        "action",
        "status",
        "held_reason",
        "attempts",
        "last_status_code",
        "lead",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["target", "status", "action", ("depends_on", admin.EmptyFieldListFilter)]
    search_fields = [
        "=id",
        "idempotency_key",
        "lead__name",
        "lead__phone",
        "lead__email",
        "=lead__kommo_lead_id",
    ]
    list_select_related = ["lead"]
    readonly_fields = [
        "target",
        "action",
        "idempotency_key",
        "status",
        "held_reason",
        "attempts",
        "next_attempt_at",
        "locked_until",
        "last_status_code",
        "last_response",
        "last_error",
        "lead",
        "source_event",
        "depends_on",
        "waiting_dependents",
        "created_at",
        "updated_at",
        "delivered_at",
        "callback_status",
        "callback_at",
        "result_pretty",
        "payload_pretty",
    ]
    exclude = ["payload", "result"]
    inlines = [N8nClaimInline]
    actions = ["retry", "release"]
    date_hierarchy = "created_at"

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: OutboundAction) -> str:
        return _pretty_json(obj.payload)

    @admin.display(description=_("result reported by n8n"))
    def result_pretty(self, obj: OutboundAction) -> str:
        return _pretty_json(obj.result) if obj.result else "-"

    @admin.display(description=_("waiting for it"))
    def waiting_dependents(self, obj: OutboundAction) -> str:
        links = [
            format_html(
                '<a href="{}">{}</a>',
                reverse("admin:kommo_hub_outboundaction_change", args=[dependent.pk]),
                f"#{dependent.pk} {dependent.action} ({dependent.get_status_display()})",
            )
            for dependent in obj.dependents.order_by("pk")[:50]
        ]
        return format_html_join(mark_safe("<br>"), "{}", ((link,) for link in links)) or "-"

    @admin.action(description=_("Retry selected failed or dead actions (attempts start again)"))
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboundAction]) -> None:
        count = actions_requeue(actions=queryset, reset_attempts=True)
        self.message_user(
            request, ngettext("%d action queued.", "%d actions queued.", count) % count
        )

    @admin.action(description=_("Release selected held actions"))
    def release(self, request: HttpRequest, queryset: QuerySet[OutboundAction]) -> None:
        count = actions_requeue(actions=queryset.filter(status="held"), reset_attempts=False)
        self.message_user(
            request, ngettext("%d action released.", "%d actions released.", count) % count
        )


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "message", "active", "resolved_at", "resolved_by"]
    list_filter = ["active", "kind"]
    actions = ["resolve"]

    @admin.action(description=_("Mark selected alerts resolved (releases held Kommo writes)"))
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = queryset.filter(active=True).update(
            active=False, resolved_at=timezone.now(), resolved_by=request.user.get_username()
        )
        self.message_user(
            request, ngettext("%d alert resolved.", "%d alerts resolved.", count) % count
        )


class MessageInline(admin.TabularInline):
    model = Message
    fields = readonly_fields = ("sent_at", "direction", "author_kind", "author_name", "text")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Lead)
class LeadAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    lead_path = ""

    list_display = ["id", "name", "phone", "email", "source", "kommo_lead_id", "created_at"]
    list_filter = ["source", "deleted_in_kommo"]
    search_fields = ["name", "phone", "email", "=kommo_lead_id", "source_identifier"]
    date_hierarchy = "created_at"


@admin.register(Contact)
class ContactAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "name", "phone", "email", "kommo_contact_id"]
    search_fields = ["name", "phone", "email", "=kommo_contact_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        queryset = super(OwnLeadsAdminMixin, self).get_queryset(request)
        if not roles.is_scoped_salesperson(request.user):
            return queryset
        leads = roles.restrict(request.user, Lead.objects.filter(contact_id=OuterRef("pk")), "")
        return queryset.filter(Exists(leads))


@admin.register(Conversation)
class ConversationAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    list_display = ["chat_id", "lead", "talk_id", "origin", "last_incoming_at", "updated_at"]
    search_fields = ["chat_id", "=talk_id", "lead__name", "lead__phone", "=lead__kommo_lead_id"]
    list_select_related = ["lead"]
    inlines = [MessageInline]


@admin.register(LeadNote)
class LeadNoteAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    list_display = ["kommo_note_id", "lead", "note_type", "text", "written_at"]
    search_fields = ["text", "=kommo_lead_id"]
    list_select_related = ["lead"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "hostname", "pid", "started_at", "last_seen"]


# --- API keys ----------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "scope"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for machines. Adding one shows the key once (a message after saving); only its
    SHA-256 is stored. Revoking is switching it off (it stops working at once)."""

    list_display = ["name", "prefix", "scope", "active", "created_at", "last_used_at"]
    list_filter = ["scope", "active"]
    search_fields = ["name", "=prefix"]
    actions = ["revoke"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "scope"]
        return ["name", "scope", "active", "prefix", "created_at", "last_used_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["scope", "prefix", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        key = None if change else obj.set_new_key()
        super().save_model(request, obj, form, change)
        if key is not None:
            self.message_user(
                request,
                format_html(
                    "{} <code>{}</code>",
                    _("API key created. Copy it now: it is not shown again."),
                    key,
                ),
                messages.WARNING,
            )

    @admin.action(description=_("Revoke selected API keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(active=True).update(active=False)
        self.message_user(
            request,
            ngettext("%d API key revoked.", "%d API keys revoked.", count) % count,
            messages.SUCCESS,
        )
