"""The agenda: the hub's mirror of Supabase (appointments, availability blocks, interaction
history), the sync cursors, and the reminders sent for each appointment."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", _("booked")
    CONFIRMED = "confirmed", _("confirmed")
    CANCELLED = "cancelled", _("cancelled")
    DONE = "done", _("done")
    NO_SHOW = "no_show", _("no-show")


ACTIVE_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class Appointment(models.Model):
    """Mirrors Supabase `agendamentos`; Supabase is the agenda's home."""

    supabase_id = models.UUIDField(_("Supabase id"), unique=True, null=True, blank=True)
    salesperson = models.ForeignKey(
        "routing.Salesperson",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="appointments",
        verbose_name=_("salesperson"),
    )
    lead = models.ForeignKey(
        "kommo_hub.Lead",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="appointments",
        verbose_name=_("lead"),
    )
    kommo_lead_id = models.BigIntegerField(_("Kommo lead id"), null=True, blank=True)
    kommo_contact_id = models.BigIntegerField(_("Kommo contact id"), null=True, blank=True)
    starts_at = models.DateTimeField(_("starts at"), db_index=True)
    ends_at = models.DateTimeField(_("ends at"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=AppointmentStatus.choices,
        default=AppointmentStatus.BOOKED,
        db_index=True,
    )
    source = models.CharField(_("source"), max_length=32, blank=True)
    title = models.CharField(_("title"), max_length=255, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    idempotency_key = models.CharField(
        _("booking key"), max_length=255, unique=True, null=True, blank=True
    )
    supabase_updated_at = models.DateTimeField(_("updated in Supabase at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("appointment")
        verbose_name_plural = _("appointments")
        ordering = ["starts_at", "pk"]
        # Managers; a salesperson (Salesperson.user) sees only their own appointments.
        permissions = [("view_all_appointments", _("Can see every salesperson's appointments"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="appt_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["salesperson", "starts_at"], name="appt_owner_time_idx")]

    def __str__(self) -> str:
        return f"{self.salesperson} {self.starts_at:%d/%m %H:%M}"


class AgendaBlock(models.Model):
    """Mirrors Supabase `agenda_vendedor`: extra availability, or a block in an agenda."""

    class Kind(models.TextChoices):
        AVAILABLE = "available", _("available")
        BLOCKED = "blocked", _("blocked")

    supabase_id = models.UUIDField(_("Supabase id"), unique=True)
    salesperson = models.ForeignKey(
        "routing.Salesperson",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="agenda_blocks",
        verbose_name=_("salesperson"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    deleted = models.BooleanField(_("deleted in Supabase"), default=False)
    supabase_updated_at = models.DateTimeField(_("updated in Supabase at"), null=True, blank=True)

    class Meta:
        verbose_name = _("agenda block")
        verbose_name_plural = _("agenda blocks")
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["salesperson", "starts_at"], name="block_owner_time_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.starts_at:%d/%m %H:%M}"


class Interaction(models.Model):
    """Mirrors Supabase `historico_interacoes`."""

    supabase_id = models.UUIDField(_("Supabase id"), unique=True)
    lead = models.ForeignKey(
        "kommo_hub.Lead",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="interactions",
        verbose_name=_("lead"),
    )
    appointment = models.ForeignKey(
        Appointment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="interactions",
        verbose_name=_("appointment"),
    )
    kind = models.CharField(_("kind"), max_length=64, blank=True)
    text = models.TextField(_("text"), blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    happened_at = models.DateTimeField(_("happened at"), null=True, blank=True)
    supabase_updated_at = models.DateTimeField(_("updated in Supabase at"), null=True, blank=True)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interaction history")
        ordering = ["-happened_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:40]}"


class SyncCursor(models.Model):
    """Where the incremental Supabase → hub sync of one table stopped: (updated_at, id)."""

    table = models.CharField(_("table"), max_length=64, unique=True)
    updated_at = models.DateTimeField(_("last updated_at seen"), null=True, blank=True)
    last_id = models.CharField(_("last id seen"), max_length=64, blank=True)
    rows_synced = models.PositiveBigIntegerField(_("rows synced"), default=0)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("sync cursor")
        verbose_name_plural = _("sync cursors")

    def __str__(self) -> str:
        return self.table


class ReminderStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class Reminder(models.Model):
    """One reminder per appointment, offset and start time: a moved appointment gets new ones."""

    appointment = models.ForeignKey(
        Appointment,
        on_delete=models.CASCADE,
        related_name="reminders",
        verbose_name=_("appointment"),
    )
    offset_minutes = models.PositiveIntegerField(_("minutes before"))
    appointment_starts_at = models.DateTimeField(_("for the start at"))
    due_at = models.DateTimeField(_("due at"), db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=ReminderStatus.choices, default=ReminderStatus.SCHEDULED
    )
    action = models.ForeignKey(
        "kommo_hub.OutboundAction",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("n8n action"),
    )
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "offset_minutes", "appointment_starts_at"],
                name="one_reminder_per_offset_and_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.appointment} −{self.offset_minutes} min"
