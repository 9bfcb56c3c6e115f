"""The record that proves an erasure happened: who asked, when, why and what changed.

It holds no personal data: only the hub's and Kommo's ids, the counts of rows changed per table
and what the operator must still erase outside the hub (Kommo, Supabase).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ErasureAction(models.TextChoices):
    ANONYMIZE = "anonymize", _("anonymized")
    DELETE = "delete", _("deleted")


class ErasureTrigger(models.TextChoices):
    REQUEST = "request", _("data subject's request")
    RETENTION = "retention", _("retention period over")


class ErasureLog(models.Model):
    lead_id = models.BigIntegerField(_("lead id"), db_index=True)
    action = models.CharField(_("action"), max_length=16, choices=ErasureAction.choices)
    trigger = models.CharField(_("trigger"), max_length=16, choices=ErasureTrigger.choices)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    requested_by = models.CharField(_("requested by"), max_length=150, blank=True)
    rows = models.JSONField(_("rows changed per table"), default=dict, blank=True)
    external = models.JSONField(_("still to erase outside the hub"), default=dict, blank=True)
    erased_at = models.DateTimeField(_("erased at"), db_index=True)

    class Meta:
        verbose_name = _("erasure log")
        verbose_name_plural = _("erasure logs")
        ordering = ["-erased_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: lead #{self.lead_id}"
