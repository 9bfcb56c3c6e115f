"""Bot control in the admin: "Conversations" with their bot state, pause / resume, and history.

Who sees what: managers (superusers, or users with `botcontrol.manage_all_conversations`) see and
act on every conversation; a salesperson (a staff user linked by Salesperson.user) sees and acts
only on the conversations whose lead is currently assigned to them; nobody else sees the page.
Another salesperson's conversation does not exist for them (404), and a selected id that is not
theirs is simply not part of what an action changes.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from botcontrol.models import BotChange, BotConversation, BotMode, BotState, ChangeVia
from kommo_hub.admin import OwnLeadsAdminMixin, ReadOnlyAdmin
from routing.models import Assignment, Salesperson

MANAGE_ALL = "botcontrol.manage_all_conversations"


def is_manager(user: Any) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm(MANAGE_ALL)))


def salesperson_of(request: HttpRequest) -> Salesperson | None:
    """The salesperson linked to the logged-in user (looked up once per request)."""
    if not hasattr(request, "_botcontrol_salesperson"):
        user = request.user
        person = (
            Salesperson.objects.filter(user_id=user.pk).first() if user.is_authenticated else None
        )
        request._botcontrol_salesperson = person  # type: ignore[attr-defined]
    return request._botcontrol_salesperson  # type: ignore[attr-defined]


def display_name(request: HttpRequest) -> str:
    person = salesperson_of(request)
    if person is not None:
        return person.name
    user = request.user
    return str(user.get_full_name() or user.get_username())  # type: ignore[union-attr]


def _state(obj: BotConversation) -> BotState | None:
    try:
        return obj.bot_state
    except BotState.DoesNotExist:
        return None


class PauseForm(forms.Form):
    hours = forms.DecimalField(
        label=_("For how many hours"),
        required=False,
        min_value=0.25,
        max_value=720,
        decimal_places=2,
        help_text=_("Empty: the area's longest pause (or until resumed)."),
    )
    reason = forms.CharField(label=_("Why"), required=False, max_length=200)


class ResumeForm(forms.Form):
    reason = forms.CharField(label=_("Why"), required=False, max_length=200)


class BotModeFilter(admin.SimpleListFilter):
    title = _("bot")
    parameter_name = "bot"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(BotMode.ACTIVE, BotMode.ACTIVE.label), (BotMode.PAUSED, BotMode.PAUSED.label)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        paused = Q(bot_state__mode=BotMode.PAUSED) & (
            Q(bot_state__until__isnull=True) | Q(bot_state__until__gt=timezone.now())
        )
        if self.value() == BotMode.PAUSED:
            return queryset.filter(paused)
        if self.value() == BotMode.ACTIVE:
            return queryset.exclude(paused)
        return queryset


class BotChangeInline(admin.TabularInline):
    model = BotChange
    fk_name = "conversation"
    fields = readonly_fields = ("at", "mode", "via", "by_name", "reason", "until", "source_ref")
    ordering = ["-at", "-pk"]
    extra = 0
    can_delete = False
    verbose_name_plural = _("history")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # whoever may see the conversation sees its history


@admin.register(BotConversation)
class BotConversationAdmin(admin.ModelAdmin):
    list_display = ["chat_id", "lead", "owner", "bot", "since", "until", "by", "how"]
    list_display_links = ["chat_id"]
    list_filter = [BotModeFilter]
    search_fields = ["chat_id", "lead__name", "lead__phone", "=lead__kommo_lead_id"]
    list_select_related = ["lead", "bot_state"]
    fields = readonly_fields = (
        "lead",
        "owner",
        "chat_id",
        "talk_id",
        "bot",
        "since",
        "until",
        "by",
        "how",
        "why",
        "last_human_at",
    )
    inlines = [BotChangeInline]
    actions = ["pause_bot", "resume_bot"]
    change_form_template = "admin/botcontrol/botconversation/change_form.html"

    # --- Who sees and acts ---------------------------------------------------------------------

    def _may_use(self, request: HttpRequest) -> bool:
        return is_manager(request.user) or salesperson_of(request) is not None

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

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Pause / resume (each conversation still has to be one the user sees)."""
        return self._may_use(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        current = Assignment.objects.filter(lead_id=OuterRef("lead_id"), is_current=True)
        queryset = (
            super()
            .get_queryset(request)
            .annotate(owner_name=Subquery(current.values("salesperson__name")[:1]))
        )
        if is_manager(request.user):
            return queryset
        person = salesperson_of(request)
        if person is None:
            return queryset.none()
        return queryset.filter(
            lead__assignments__is_current=True, lead__assignments__salesperson=person
        )

    def _visible(self, request: HttpRequest, object_id: str) -> BotConversation:
        """The conversation if this user may see it; 403 for a user without the page at all,
        404 for a conversation that is not theirs (or does not exist)."""
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

    # --- Columns -------------------------------------------------------------------------------

    @admin.display(description=_("salesperson"), ordering="owner_name")
    def owner(self, obj: BotConversation) -> str:
        return getattr(obj, "owner_name", None) or "-"

    @admin.display(description=_("bot"), ordering="bot_state__mode")
    def bot(self, obj: BotConversation) -> str:
        state = _state(obj)
        if state is None or (
            state.mode == BotMode.PAUSED and state.until and state.until <= timezone.now()
        ):
            return str(BotMode.ACTIVE.label)
        return str(BotMode(state.mode).label)

    @admin.display(description=_("since"), ordering="bot_state__since")
    def since(self, obj: BotConversation) -> Any:
        state = _state(obj)
        return state.since if state and state.since else "-"

    @admin.display(description=_("until"), ordering="bot_state__until")
    def until(self, obj: BotConversation) -> Any:
        state = _state(obj)
        return state.until if state and state.mode == BotMode.PAUSED and state.until else "-"

    @admin.display(description=_("by"))
    def by(self, obj: BotConversation) -> str:
        state = _state(obj)
        return state.by_name if state and state.by_name else "-"

    @admin.display(description=_("how"))
    def how(self, obj: BotConversation) -> str:
        state = _state(obj)
        return str(ChangeVia(state.via).label) if state and state.via else "-"

    @admin.display(description=_("why"))
    def why(self, obj: BotConversation) -> str:
        state = _state(obj)
        return state.reason if state and state.reason else "-"

    @admin.display(description=_("last human message at"))
    def last_human_at(self, obj: BotConversation) -> Any:
        state = _state(obj)
        return state.last_human_at if state and state.last_human_at else "-"

    # --- Pages ---------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/pause/",
                wrap(self.pause_view),
                name="botcontrol_botconversation_pause",
            ),
            path(
                "<path:object_id>/resume/",
                wrap(self.resume_view),
                name="botcontrol_botconversation_resume",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        conversation = self._visible(request, object_id)
        state = _state(conversation)
        paused = bool(
            state
            and state.mode == BotMode.PAUSED
            and (state.until is None or state.until > timezone.now())
        )
        context = {
            **(extra_context or {}),
            "can_act": self.has_act_permission(request),
            "bot_paused": paused,
            "pause_form": PauseForm(),
            "resume_form": ResumeForm(),
        }
        return super().change_view(request, object_id, form_url, context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._visible(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def _back(self, conversation: BotConversation) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:botcontrol_botconversation_change", args=[conversation.pk])
        )

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from kommo_hub.flows.bot import bot_manual_pause

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        conversation = self._visible(request, object_id)
        if not self.has_act_permission(request):
            raise PermissionDenied
        form = PauseForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    self.message_user(request, str(error), messages.ERROR)
            return self._back(conversation)
        hours = form.cleaned_data["hours"]
        change = bot_manual_pause(
            conversation=conversation,
            via=ChangeVia.ADMIN,
            by_name=display_name(request),
            by_salesperson=salesperson_of(request),
            hours=float(hours) if hours else None,
            reason=form.cleaned_data["reason"],
        )
        if change is None:
            self.message_user(
                request, gettext("The bot was already paused; nothing changed."), messages.INFO
            )
        else:
            self.message_user(request, gettext("Bot paused."), messages.SUCCESS)
        return self._back(conversation)

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        from kommo_hub.flows.bot import bot_manual_resume

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        conversation = self._visible(request, object_id)
        if not self.has_act_permission(request):
            raise PermissionDenied
        form = ResumeForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        change = bot_manual_resume(
            conversation=conversation,
            via=ChangeVia.ADMIN,
            by_name=display_name(request),
            by_salesperson=salesperson_of(request),
            reason=reason,
        )
        if change is None:
            self.message_user(request, gettext("The bot was not paused."), messages.INFO)
        else:
            self.message_user(request, gettext("Bot resumed."), messages.SUCCESS)
        return self._back(conversation)

    # --- Actions on the list -------------------------------------------------------------------

    @admin.action(description=_("Pause bot"), permissions=["act"])
    def pause_bot(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from botcontrol.services import bot_is_active_db
        from kommo_hub.flows.bot import bot_manual_pause

        done = skipped = 0
        for conversation in queryset:  # only the ones this user sees (get_queryset)
            if not bot_is_active_db(conversation_id=conversation.pk):
                skipped += 1
                continue
            change = bot_manual_pause(
                conversation=conversation,
                via=ChangeVia.ADMIN,
                by_name=display_name(request),
                by_salesperson=salesperson_of(request),
            )
            done, skipped = (done + 1, skipped) if change else (done, skipped + 1)
        self.message_user(
            request,
            ngettext("Bot paused in %d conversation.", "Bot paused in %d conversations.", done)
            % done,
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%d conversation was already paused.",
                    "%d conversations were already paused.",
                    skipped,
                )
                % skipped,
                messages.INFO,
            )

    @admin.action(description=_("Resume bot"), permissions=["act"])
    def resume_bot(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from kommo_hub.flows.bot import bot_manual_resume

        done = 0
        for conversation in queryset:  # only the ones this user sees (get_queryset)
            change = bot_manual_resume(
                conversation=conversation,
                via=ChangeVia.ADMIN,
                by_name=display_name(request),
                by_salesperson=salesperson_of(request),
            )
            done += change is not None
        self.message_user(
            request,
            ngettext("Bot resumed in %d conversation.", "Bot resumed in %d conversations.", done)
            % done,
            messages.SUCCESS,
        )


@admin.register(BotChange)
class BotChangeAdmin(OwnLeadsAdminMixin, ReadOnlyAdmin):
    """Every pause and resume (Django's view permission on bot changes); a salesperson sees only
    those of the conversations of their current leads."""

    lead_path = "conversation__lead"

    list_display = ["at", "conversation", "mode", "via", "by_name", "reason", "until"]
    list_filter = ["mode", "via"]
    search_fields = ["conversation__chat_id", "conversation__lead__name", "by_name", "reason"]
    list_select_related = ["conversation"]
    date_hierarchy = "at"
