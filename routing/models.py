"""Who serves which leads: areas, salespeople and their calendars, rules, and assignments."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Strategy(models.TextChoices):
    ROUND_ROBIN = "round_robin", _("round robin")
    WEIGHTED = "weighted", _("weighted (by share)")
    LEAST_LOADED = "least_loaded", _("least loaded")


class Area(models.Model):
    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    active = models.BooleanField(_("active"), default=True)
    description = models.TextField(_("description"), blank=True)
    ai_instructions = models.TextField(
        _("AI instructions"),
        blank=True,
        help_text=_("Sent to n8n: how the AI speaks for this area."),
    )
    first_message_hint = models.TextField(
        _("first message hint"),
        blank=True,
        help_text=_("Sent to n8n with the proactive message: what the first message should say."),
    )
    kommo_pipeline_id = models.BigIntegerField(_("Kommo pipeline id"), null=True, blank=True)
    kommo_status_id = models.BigIntegerField(_("Kommo stage id"), null=True, blank=True)
    strategy = models.CharField(
        _("strategy"), max_length=16, choices=Strategy.choices, default=Strategy.ROUND_ROBIN
    )
    sticky_owner = models.BooleanField(
        _("returning contacts go back to their salesperson"), default=True
    )
    fallback_salesperson = models.ForeignKey(
        "Salesperson",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="fallback_for_areas",
        verbose_name=_("fallback salesperson"),
        help_text=_("Receives the lead when no member of the area is available."),
    )
    reply_sla_minutes = models.PositiveIntegerField(
        _("reply SLA (working minutes)"),
        null=True,
        blank=True,
        help_text=_(
            "If the salesperson neither replies nor moves the lead in Kommo within this many "
            "working minutes, the lead is reassigned. Empty: never."
        ),
    )
    is_default = models.BooleanField(
        _("default area"), default=False, help_text=_("Receives leads no rule matched.")
    )
    auto_takeover = models.BooleanField(
        _("a salesperson's message pauses the bot"),
        default=True,
        help_text=_("Any message the hub did not send (from Kommo or the phone) pauses the AI."),
    )
    takeover_resume_hours = models.PositiveIntegerField(
        _("bot resumes after hours of human silence"),
        default=2,
        help_text=_("After an automatic takeover. 0: only #voltar resumes it."),
    )
    slot_minutes = models.PositiveIntegerField(_("meeting length (minutes)"), default=30)
    buffer_minutes = models.PositiveIntegerField(_("buffer between meetings (minutes)"), default=0)
    min_notice_minutes = models.PositiveIntegerField(_("minimum notice (minutes)"), default=120)
    booking_horizon_days = models.PositiveIntegerField(_("booking horizon (days)"), default=14)
    max_pause_hours = models.PositiveIntegerField(
        _("longest pause (hours)"),
        null=True,
        blank=True,
        default=24,
        help_text=_("A plain #pausar ends after this. Empty: only #voltar resumes it."),
    )
    rotation_seq = models.PositiveBigIntegerField(_("rotation counter"), default=0, editable=False)

    class Meta:
        verbose_name = _("area")
        verbose_name_plural = _("areas")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_area"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (self.kommo_status_id is None) != (self.kommo_pipeline_id is None):
            raise ValidationError(
                _("Give both the Kommo pipeline and the stage, or neither."),
                code="pipeline_stage",
            )


class Salesperson(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="salesperson",
        verbose_name=_("login"),
    )
    name = models.CharField(_("name"), max_length=120)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    kommo_user_id = models.BigIntegerField(_("Kommo user id"), unique=True, null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    is_duty = models.BooleanField(
        _("global fallback (on duty)"),
        default=False,
        help_text=_("Receives leads of any area when neither the area nor its fallback can."),
    )
    max_open_leads = models.PositiveIntegerField(
        _("max open leads"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    max_new_leads_per_day = models.PositiveIntegerField(
        _("max new leads per day"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    holiday_state = models.CharField(
        _("state for holidays"),
        max_length=2,
        blank=True,
        help_text=_(
            "Two-letter state (UF), e.g. SP, to add its state holidays to the national ones."
        ),
    )
    last_assigned_at = models.DateTimeField(_("last assigned at"), null=True, blank=True)

    class Meta:
        verbose_name = _("salesperson")
        verbose_name_plural = _("salespeople")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_duty"], condition=Q(is_duty=True), name="one_duty")
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from routing.calendar import BRAZILIAN_STATES
        from routing.conditions import phone_e164_or_error

        if self.phone:
            try:
                self.phone = phone_e164_or_error(self.phone)
            except ValidationError as exc:
                raise ValidationError({"phone": exc.messages}) from exc
        self.holiday_state = self.holiday_state.upper()
        if self.holiday_state and self.holiday_state not in BRAZILIAN_STATES:
            raise ValidationError(
                {"holiday_state": _("Unknown Brazilian state: %(uf)s") % {"uf": self.holiday_state}}
            )


class AreaMembership(models.Model):
    area = models.ForeignKey(
        Area, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("area")
    )
    salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("salesperson"),
    )
    weight = models.PositiveIntegerField(_("weight"), default=1, validators=[MinValueValidator(1)])
    priority = models.PositiveSmallIntegerField(
        _("priority tier"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_("1 is served first; tier 2 receives leads only when nobody in tier 1 can."),
    )
    active = models.BooleanField(_("active"), default=True)
    last_turn = models.PositiveBigIntegerField(_("last turn"), default=0, editable=False)
    current_weight = models.BigIntegerField(_("weighted rotation state"), default=0, editable=False)

    class Meta:
        verbose_name = _("area membership")
        verbose_name_plural = _("area memberships")
        ordering = ["area", "priority", "salesperson__name"]
        constraints = [
            models.UniqueConstraint(fields=["area", "salesperson"], name="one_membership_per_area")
        ]

    def __str__(self) -> str:
        return f"{self.salesperson} @ {self.area}"


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class WorkingHours(models.Model):
    """One interval of a weekday; several per day make lunch breaks (09–12, 13–18)."""

    salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.CASCADE,
        related_name="working_hours",
        verbose_name=_("salesperson"),
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    starts = models.TimeField(_("from"))
    ends = models.TimeField(_("until"), help_text=_("00:00 means the end of the day."))

    class Meta:
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")
        ordering = ["salesperson", "weekday", "starts"]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.starts:%H:%M}–{self.ends:%H:%M}"

    def clean(self) -> None:
        from routing.calendar import interval_end_minutes

        if self.starts is None or self.ends is None:
            return
        start = self.starts.hour * 60 + self.starts.minute
        if interval_end_minutes(self.ends) <= start:
            raise ValidationError(_("The interval must end after it starts."), code="order")


class TimeOff(models.Model):
    class Kind(models.TextChoices):
        VACATION = "vacation", _("vacation")
        SICK = "sick", _("sick leave")
        OTHER = "other", _("other")

    salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.CASCADE,
        related_name="time_off",
        verbose_name=_("salesperson"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.VACATION)
    first_day = models.DateField(_("first day"))
    last_day = models.DateField(_("last day"))
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("time off")
        verbose_name_plural = _("time off")
        ordering = ["-first_day"]

    def __str__(self) -> str:
        return f"{self.salesperson}: {self.first_day:%d/%m/%Y}–{self.last_day:%d/%m/%Y}"

    def clean(self) -> None:
        if self.first_day and self.last_day and self.last_day < self.first_day:
            raise ValidationError(_("The last day is before the first day."), code="order")


class CompanyHoliday(models.Model):
    """The company's own days off, on top of Brazil's national (and state) holidays."""

    date = models.DateField(_("date"), unique=True)
    name = models.CharField(_("name"), max_length=120)

    class Meta:
        verbose_name = _("company holiday")
        verbose_name_plural = _("company holidays")
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date:%d/%m/%Y} {self.name}"


class RoutingRule(models.Model):
    """Ordered; the first active rule whose conditions all hold decides the target."""

    name = models.CharField(_("name"), max_length=120)
    position = models.PositiveIntegerField(_("order"), default=0, db_index=True)
    active = models.BooleanField(_("active"), default=True)
    target_area = models.ForeignKey(
        Area,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rules",
        verbose_name=_("target area"),
    )
    target_salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rules",
        verbose_name=_("target salesperson"),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(target_area__isnull=False, target_salesperson__isnull=True)
                | Q(target_area__isnull=True, target_salesperson__isnull=False),
                name="rule_has_one_target",
                violation_error_code="target",
                violation_error_message=_("Choose exactly one target: an area or a salesperson."),
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (self.target_area_id is None) == (self.target_salesperson_id is None):
            raise ValidationError(
                _("Choose exactly one target: an area or a salesperson."), code="target"
            )


class ConditionField(models.TextChoices):
    SOURCE = "source", _("source")
    IDENTIFIER = "identifier", _("form / conversion identifier")
    UTM_SOURCE = "utm_source", "utm_source"
    UTM_MEDIUM = "utm_medium", "utm_medium"
    UTM_CAMPAIGN = "utm_campaign", "utm_campaign"
    UTM_TERM = "utm_term", "utm_term"
    UTM_CONTENT = "utm_content", "utm_content"
    TAG = "tag", _("tag")
    LEAD_FIELD = "field", _("lead field")
    AREA_CODE = "area_code", _("phone area code (DDD)")
    STATE = "state", _("phone state (UF)")


class ConditionOperator(models.TextChoices):
    EQUALS = "equals", _("equals")
    CONTAINS = "contains", _("contains")
    REGEX = "regex", _("matches regex")
    ONE_OF = "one_of", _("is one of")


class RuleCondition(models.Model):
    rule = models.ForeignKey(
        RoutingRule, on_delete=models.CASCADE, related_name="conditions", verbose_name=_("rule")
    )
    field = models.CharField(_("field"), max_length=16, choices=ConditionField.choices)
    field_name = models.CharField(
        _("lead field name"),
        max_length=120,
        blank=True,
        help_text=_("Only for 'lead field': the form field's name, e.g. interesse."),
    )
    operator = models.CharField(_("operator"), max_length=8, choices=ConditionOperator.choices)
    value = models.CharField(
        _("value"),
        max_length=500,
        help_text=_("For 'is one of', separate the values with commas. Case is ignored."),
    )

    class Meta:
        verbose_name = _("condition")
        verbose_name_plural = _("conditions")
        ordering = ["pk"]

    def __str__(self) -> str:
        subject = self.field_name if self.field == ConditionField.LEAD_FIELD else self.field
        return f"{subject} {self.operator} {self.value}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self._rule_changed()

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        result = super().delete(*args, **kwargs)
        self._rule_changed()
        return result

    def _rule_changed(self) -> None:
        # Compiled rules are cached per rule set version (routing.selectors.rules_compiled).
        RoutingRule.objects.filter(pk=self.rule_id).update(updated_at=timezone.now())

    def clean(self) -> None:
        from routing.conditions import condition_validate

        condition_validate(
            field=self.field, field_name=self.field_name, operator=self.operator, value=self.value
        )


class AssignmentKind(models.TextChoices):
    NEW = "new", _("new lead")
    BACKLOG = "backlog", _("from the waiting queue")
    SLA = "sla", _("reassigned: reply SLA expired")
    KOMMO = "kommo", _("changed in Kommo")


class AssignmentStatus(models.TextChoices):
    ASSIGNED = "assigned", _("assigned")
    WAITING = "waiting", _("waiting: nobody available")


class Assignment(models.Model):
    """One routing decision. Exactly one per lead is current; the rest is its history."""

    lead = models.ForeignKey(
        "kommo_hub.Lead",
        on_delete=models.CASCADE,
        related_name="assignments",
        verbose_name=_("lead"),
    )
    salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assignments",
        verbose_name=_("salesperson"),
    )
    area = models.ForeignKey(
        Area,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assignments",
        verbose_name=_("area"),
    )
    rule = models.ForeignKey(
        RoutingRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assignments",
        verbose_name=_("rule"),
    )
    target_salesperson = models.ForeignKey(
        Salesperson,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("rule's target salesperson"),
    )
    rule_name = models.CharField(_("rule (at the time)"), max_length=120, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=AssignmentKind.choices)
    status = models.CharField(_("status"), max_length=8, choices=AssignmentStatus.choices)
    strategy = models.CharField(_("strategy"), max_length=16, blank=True)
    deciding_step = models.CharField(_("decided by"), max_length=200, blank=True)
    explanation = models.JSONField(_("explanation"), default=dict, blank=True)
    is_current = models.BooleanField(_("current"), default=True)
    decided_at = models.DateTimeField(_("decided at"), db_index=True)
    sla_due_at = models.DateTimeField(_("reply due by"), null=True, blank=True)
    responded_at = models.DateTimeField(_("salesperson responded at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        ordering = ["-decided_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead"], condition=Q(is_current=True), name="one_current_assignment"
            )
        ]
        indexes = [
            # Covers the load counts (open leads, leads today) without reading the explanation.
            models.Index(
                fields=["salesperson", "is_current", "status", "decided_at", "lead"],
                name="assignment_load_idx",
            ),
            models.Index(
                fields=["status", "is_current", "decided_at"], name="assignment_queue_idx"
            ),
            models.Index(fields=["is_current", "sla_due_at"], name="assignment_sla_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} → {self.salesperson or _('waiting')}"
