"""The intake inbox: raw webhook requests and the events parsed from them."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Source(models.TextChoices):
    KOMMO = "kommo", "Kommo"
    RDSTATION = "rdstation", "RD Station"
    FORMS = "forms", _("Website form")
    N8N = "n8n", "n8n"
    SUPABASE = "supabase", "Supabase"


class InboundRequest(models.Model):
    """One HTTP request exactly as received (secrets never stored)."""

    source = models.CharField(_("source"), max_length=16, choices=Source.choices, db_index=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    content_type = models.CharField(_("content type"), max_length=200, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("raw body"), blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    accepted = models.PositiveIntegerField(_("accepted events"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicate events"), default=0)

    class Meta:
        verbose_name = _("inbound request")
        verbose_name_plural = _("inbound requests")
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} #{self.pk}"


class EventStatus(models.TextChoices):
    RECEIVED = "received", _("received")
    PROCESSING = "processing", _("processing")
    PROCESSED = "processed", _("processed")
    IGNORED = "ignored", _("ignored")
    FAILED = "failed", _("failed (will retry)")
    DEAD = "dead", _("dead (gave up)")


class InboundEvent(models.Model):
    """One event of a request (a batch yields one row per item), deduplicated by `dedupe_key`."""

    request = models.ForeignKey(
        InboundRequest, on_delete=models.CASCADE, related_name="events", verbose_name=_("request")
    )
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    event_type = models.CharField(_("event type"), max_length=64, db_index=True)
    dedupe_key = models.CharField(_("dedupe key"), max_length=255, unique=True)
    external_id = models.CharField(_("external id"), max_length=128, blank=True, db_index=True)
    payload = models.JSONField(_("payload"), default=dict)
    status = models.CharField(
        _("status"), max_length=16, choices=EventStatus.choices, default=EventStatus.RECEIVED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True)
    result = models.CharField(_("result"), max_length=255, blank=True)
    lead = models.ForeignKey(
        "kommo_hub.Lead",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("lead"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("inbound event")
        verbose_name_plural = _("inbound events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="event_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"
