"""Operational state shared by every process: alerts, heartbeats, scheduler ticks, rate limits."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Alert(models.Model):
    class Kind(models.TextChoices):
        KOMMO_BLOCKED = "kommo_blocked", _("Kommo blocked the account (403)")
        KOMMO_UNAUTHORIZED = "kommo_unauthorized", _("Kommo rejected the token (401)")
        DEAD_LETTER = "dead_letter", _("action dead-lettered")
        EVENT_DEAD = "event_dead", _("event gave up")
        ROUTING = "routing", _("routing problem")
        ROUTING_WAITING = "routing_waiting", _("leads waiting: nobody available")
        N8N_FAILED = "n8n_failed", _("n8n could not carry out an action")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices, db_index=True)
    message = models.TextField(_("message"))
    active = models.BooleanField(_("active"), default=True, db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.CharField(_("resolved by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"


class WorkerHeartbeat(models.Model):
    worker_id = models.CharField(_("worker"), max_length=64, unique=True)
    hostname = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.PositiveIntegerField(_("process id"), default=0)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    last_seen = models.DateTimeField(_("last seen"), db_index=True)

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return self.worker_id


class SchedulerRun(models.Model):
    """One row per (job, tick): the unique key lets exactly one scheduler win each tick."""

    job = models.CharField(_("job"), max_length=64)
    tick = models.BigIntegerField(_("tick"))
    ran_at = models.DateTimeField(_("ran at"), auto_now_add=True)
    ran_by = models.CharField(_("ran by"), max_length=128, blank=True)

    class Meta:
        verbose_name = _("scheduler run")
        verbose_name_plural = _("scheduler runs")
        constraints = [
            models.UniqueConstraint(fields=["job", "tick"], name="scheduler_one_per_tick")
        ]

    def __str__(self) -> str:
        return f"{self.job}@{self.tick}"


class RateLimitWindow(models.Model):
    """Sliding-window limiter state when no Redis is configured (row-locked per request)."""

    key = models.CharField(max_length=64, unique=True)
    grants = models.JSONField(default=list)

    class Meta:
        verbose_name = _("rate limit window")
        verbose_name_plural = _("rate limit windows")

    def __str__(self) -> str:
        return self.key
