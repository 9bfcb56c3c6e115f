"""The outbox: every action for n8n or write to Kommo, delivered with retries."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ActionTarget(models.TextChoices):
    N8N = "n8n", "n8n"
    KOMMO = "kommo", "Kommo"


class ActionStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    HELD = "held", _("held")
    DELIVERING = "delivering", _("delivering")
    DONE = "done", _("delivered")
    FAILED = "failed", _("failed (will retry)")
    DEAD = "dead", _("dead letter")
    # Terminal, never sent: e.g. a reply whose conversation was paused before it went out.
    SKIPPED = "skipped", _("skipped")


class OutboundAction(models.Model):
    target = models.CharField(_("target"), max_length=8, choices=ActionTarget.choices)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, unique=True)
    payload = models.JSONField(_("payload"), default=dict)
    lead = models.ForeignKey(
        "kommo_hub.Lead",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="actions",
        verbose_name=_("lead"),
    )
    source_event = models.ForeignKey(
        "kommo_hub.InboundEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="actions",
        verbose_name=_("source event"),
    )
    depends_on = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="dependents",
        verbose_name=_("waits for"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=ActionStatus.choices, default=ActionStatus.PENDING
    )
    held_reason = models.CharField(_("held because"), max_length=200, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(_("last HTTP status"), null=True, blank=True)
    last_response = models.TextField(_("last response (excerpt)"), blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    # The chat a `reply` answers (other actions find their lead's conversation when sent).
    conversation = models.ForeignKey(
        "kommo_hub.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="actions",
        verbose_name=_("conversation"),
    )
    # What n8n reported back (ARCHITECTURE §4.3): the latest status, when, and the details.
    callback_status = models.CharField(_("n8n reported"), max_length=16, blank=True)
    callback_at = models.DateTimeField(_("n8n reported at"), null=True, blank=True)
    result = models.JSONField(_("result reported by n8n"), default=dict, blank=True)
    sent_message = models.ForeignKey(
        "kommo_hub.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sent_by_actions",
        verbose_name=_("message sent"),
    )

    class Meta:
        verbose_name = _("outbound action")
        verbose_name_plural = _("outbound actions")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="action_due_idx")]

    def __str__(self) -> str:
        return f"{self.target}:{self.action} #{self.pk}"


class ClaimState(models.TextChoices):
    STARTED = "started", _("in progress")
    DONE = "done", _("done")
    HANDOFF = "handoff", _("handed off")
    FAILED = "failed", _("failed")


class N8nClaim(models.Model):
    """n8n's duplicate guard: which execution carries out an action, one row per idempotency key.

    An n8n execution claims the key before doing anything; a duplicate delivery is refused while
    one is in progress (until N8N_CLAIM_TTL_SECONDS) or after it is done. n8n's callbacks move
    the state on.
    """

    action = models.OneToOneField(
        OutboundAction,
        on_delete=models.CASCADE,
        related_name="n8n_claim",
        verbose_name=_("action"),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, unique=True)
    state = models.CharField(_("state"), max_length=16, choices=ClaimState.choices)
    execution_id = models.CharField(_("n8n execution"), max_length=64, blank=True)
    # Executions let through so far (a failed one may be followed by another).
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed at"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("n8n claim")
        verbose_name_plural = _("n8n claims")
        ordering = ["-claimed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.state}"
