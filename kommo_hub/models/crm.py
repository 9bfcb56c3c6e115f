"""The hub's mirror of people and deals: contacts, leads, their conversations and notes."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    kommo_contact_id = models.BigIntegerField(
        _("Kommo contact id"), unique=True, null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=255, blank=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True, db_index=True)
    phone_raw = models.CharField(_("phone as received"), max_length=64, blank=True)
    email = models.EmailField(_("e-mail"), blank=True, db_index=True)
    email_raw = models.CharField(_("e-mail as received"), max_length=254, blank=True)
    kommo_updated_at = models.DateTimeField(_("updated in Kommo at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class Lead(models.Model):
    kommo_lead_id = models.BigIntegerField(_("Kommo lead id"), unique=True, null=True, blank=True)
    contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="leads",
        verbose_name=_("contact"),
    )
    name = models.CharField(_("name"), max_length=255, blank=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True, db_index=True)
    phone_raw = models.CharField(_("phone as received"), max_length=64, blank=True)
    email = models.EmailField(_("e-mail"), blank=True, db_index=True)
    email_raw = models.CharField(_("e-mail as received"), max_length=254, blank=True)
    source = models.CharField(_("source"), max_length=32, blank=True, db_index=True)
    source_identifier = models.CharField(_("form / conversion"), max_length=255, blank=True)
    utm = models.JSONField(_("UTM"), default=dict, blank=True)
    fields = models.JSONField(_("other fields"), default=dict, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    price = models.DecimalField(_("price"), max_digits=14, decimal_places=2, null=True, blank=True)
    kommo_pipeline_id = models.BigIntegerField(_("Kommo pipeline"), null=True, blank=True)
    kommo_status_id = models.BigIntegerField(_("Kommo stage"), null=True, blank=True)
    kommo_responsible_user_id = models.BigIntegerField(
        _("Kommo responsible user"), null=True, blank=True
    )
    deleted_in_kommo = models.BooleanField(_("deleted in Kommo"), default=False)
    kommo_updated_at = models.DateTimeField(_("updated in Kommo at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class Conversation(models.Model):
    chat_id = models.CharField(_("Kommo chat id"), max_length=64, unique=True)
    talk_id = models.BigIntegerField(_("Kommo talk id"), null=True, blank=True, db_index=True)
    lead = models.ForeignKey(
        Lead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("lead"),
    )
    kommo_contact_id = models.BigIntegerField(_("Kommo contact id"), null=True, blank=True)
    origin = models.CharField(_("channel"), max_length=64, blank=True)
    is_in_work = models.BooleanField(_("in work"), null=True, blank=True)
    last_incoming_at = models.DateTimeField(_("last customer message at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.chat_id


class Message(models.Model):
    class Direction(models.TextChoices):
        INCOMING = "in", _("incoming")
        OUTGOING = "out", _("outgoing")

    class AuthorKind(models.TextChoices):
        CUSTOMER = "customer", _("customer")
        SALESPERSON = "salesperson", _("salesperson")
        BOT = "bot", _("bot")
        UNKNOWN = "unknown", _("unknown")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
    )
    external_id = models.CharField(_("Kommo message id"), max_length=64, unique=True)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    author_kind = models.CharField(_("author"), max_length=16, choices=AuthorKind.choices)
    author_id = models.CharField(_("author id"), max_length=64, blank=True)
    author_name = models.CharField(_("author name"), max_length=255, blank=True)
    message_type = models.CharField(_("type"), max_length=32, blank=True)
    text = models.TextField(_("text"), blank=True)
    attachment = models.JSONField(_("attachment"), default=dict, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["sent_at", "id"]

    def __str__(self) -> str:
        return f"{self.direction}: {self.text[:40]}"


class LeadNote(models.Model):
    kommo_note_id = models.BigIntegerField(_("Kommo note id"), unique=True)
    lead = models.ForeignKey(
        Lead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notes",
        verbose_name=_("lead"),
    )
    kommo_lead_id = models.BigIntegerField(_("Kommo lead id"), null=True, blank=True)
    note_type = models.CharField(_("type"), max_length=32, blank=True)
    text = models.TextField(_("text"), blank=True)
    author_kommo_user_id = models.BigIntegerField(_("author (Kommo user)"), null=True, blank=True)
    written_at = models.DateTimeField(_("written at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("lead note")
        verbose_name_plural = _("lead notes")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.text[:60]
