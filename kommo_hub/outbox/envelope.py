"""The n8n action envelope (ARCHITECTURE §4.2). Keys that do not apply are omitted."""

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from kommo_hub.models import Lead


def lead_block(lead: Lead) -> dict[str, Any]:
    contact = lead.contact
    return {
        "id": lead.pk,
        "kommo_lead_id": lead.kommo_lead_id,
        "kommo_contact_id": contact.kommo_contact_id if contact else None,
        "name": lead.name or (contact.name if contact else ""),
        "phone": lead.phone or (contact.phone if contact else ""),
        "email": lead.email or (contact.email if contact else ""),
        "source": lead.source,
        "utm": lead.utm,
        "fields": lead.fields,
    }


def callback_url() -> str | None:
    if not settings.N8N_CALLBACK_SECRET:
        return None
    path = reverse("webhook-n8n", kwargs={"secret": settings.N8N_CALLBACK_SECRET})
    return f"{settings.HUB_PUBLIC_URL}{path}"


def envelope_build(
    *, action: str, idempotency_key: str, lead: Lead | None, **blocks: dict[str, Any] | None
) -> dict[str, Any]:
    """The stored payload of an n8n action; `sent_at` and `callback_url` are set per attempt."""
    envelope: dict[str, Any] = {"action": action, "idempotency_key": idempotency_key}
    if lead is not None:
        envelope["lead"] = lead_block(lead)
    envelope.update({name: block for name, block in blocks.items() if block is not None})
    return envelope


def envelope_for_attempt(payload: dict[str, Any], *, lead: Lead | None = None) -> dict[str, Any]:
    """The stored payload as sent now: `sent_at`, `callback_url`, and the lead block rebuilt from
    the current row (e.g. the Kommo ids of a lead created in Kommo after the action was stored)."""
    envelope = {**payload, "sent_at": timezone.now().isoformat().replace("+00:00", "Z")}
    if lead is not None:
        envelope["lead"] = lead_block(lead)
    url = callback_url()
    if url:
        envelope["callback_url"] = url
    return envelope
