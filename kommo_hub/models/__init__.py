"""The hub's own tables, one module per meaning."""

from kommo_hub.models.api import ApiKey, ApiKeyScope
from kommo_hub.models.crm import Contact, Conversation, Lead, LeadNote, Message
from kommo_hub.models.intake import EventStatus, InboundEvent, InboundRequest, Source
from kommo_hub.models.ops import Alert, RateLimitWindow, SchedulerRun, WorkerHeartbeat
from kommo_hub.models.outbox import (
    ActionStatus,
    ActionTarget,
    ClaimState,
    N8nClaim,
    OutboundAction,
)

__all__ = [
    "ActionStatus",
    "ActionTarget",
    "Alert",
    "ApiKey",
    "ApiKeyScope",
    "ClaimState",
    "Contact",
    "Conversation",
    "EventStatus",
    "InboundEvent",
    "InboundRequest",
    "Lead",
    "LeadNote",
    "Message",
    "N8nClaim",
    "OutboundAction",
    "RateLimitWindow",
    "SchedulerRun",
    "Source",
    "WorkerHeartbeat",
]
