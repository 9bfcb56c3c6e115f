"""Whether the AI may talk in a conversation, and every change of that, with who, how and why."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from kommo_hub.models import Conversation


class BotMode(models.TextChoices):
    ACTIVE = "active", _("active")
    PAUSED = "paused", _("paused")


class ChangeVia(models.TextChoices):
    COMMAND = "command", _("chat command")
    NOTE = "note", _("lead note")
    ADMIN = "admin", _("admin")
    API = "api", _("API")
    TAKEOVER = "takeover", _("automatic: a person wrote")
    HANDOFF = "handoff", _("automatic: the AI asked for a person")
    EXPIRY = "expiry", _("automatic: pause ended")


class BotState(models.Model):
    """One row per conversation; no row means the bot is active."""

    conversation = models.OneToOneField(
        "kommo_hub.Conversation",
        on_delete=models.CASCADE,
        related_name="bot_state",
        verbose_name=_("conversation"),
    )
    mode = models.CharField(_("bot"), max_length=8, choices=BotMode.choices, default=BotMode.ACTIVE)
    via = models.CharField(_("how"), max_length=16, choices=ChangeVia.choices, blank=True)
    by_name = models.CharField(_("by"), max_length=255, blank=True)
    by_salesperson = models.ForeignKey(
        "routing.Salesperson",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by salesperson"),
    )
    reason = models.CharField(_("why"), max_length=255, blank=True)
    since = models.DateTimeField(_("since"), null=True, blank=True)
    until = models.DateTimeField(
        _("until"), null=True, blank=True, db_index=True, help_text=_("Empty: until resumed.")
    )
    resume_after_silence = models.BooleanField(
        _("resumes after human silence"),
        default=False,
        help_text=_("Automatic takeovers end after the area's hours without a human message."),
    )
    last_human_at = models.DateTimeField(_("last human message at"), null=True, blank=True)
    version = models.PositiveIntegerField(_("version"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("bot state")
        verbose_name_plural = _("bot states")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.conversation}: {self.get_mode_display()}"


class BotChange(models.Model):
    """The history: every pause and resume, never edited."""

    conversation = models.ForeignKey(
        "kommo_hub.Conversation",
        on_delete=models.CASCADE,
        related_name="bot_changes",
        verbose_name=_("conversation"),
    )
    mode = models.CharField(_("bot"), max_length=8, choices=BotMode.choices)
    via = models.CharField(_("how"), max_length=16, choices=ChangeVia.choices)
    by_name = models.CharField(_("by"), max_length=255, blank=True)
    by_salesperson = models.ForeignKey(
        "routing.Salesperson",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by salesperson"),
    )
    reason = models.CharField(_("why"), max_length=255, blank=True)
    until = models.DateTimeField(_("until"), null=True, blank=True)
    source_ref = models.CharField(
        _("source"), max_length=128, blank=True, help_text=_("Message or note id that asked.")
    )
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("bot change")
        verbose_name_plural = _("bot changes")
        ordering = ["-at", "-pk"]
        constraints = [
            # A command delivered twice (Kommo retries) changes the state once.
            models.UniqueConstraint(
                fields=["conversation", "source_ref", "mode"],
                condition=~models.Q(source_ref=""),
                name="one_change_per_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.conversation}: {self.mode} ({self.via})"


class BotConversation(Conversation):
    """The admin's "Conversations" page of bot control: a conversation with its bot state."""

    class Meta:
        proxy = True
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        permissions = [
            (
                "manage_all_conversations",
                _("Can pause and resume the bot in every conversation"),
            )
        ]
