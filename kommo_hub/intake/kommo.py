"""Kommo account webhooks: split a (possibly batched) body into events, and typed item models.

Values arrive as strings in the old v2 layout; every model is tolerant of missing keys.
"""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from kommo_hub.intake.brackets import indexed_items
from kommo_hub.intake.parsed import BadPayload, ParsedEvent, content_hash, make_key

# The id that identifies an item, per entity, and the timestamp that versions it.
_ITEM_ID = {"message": "id", "talk": "talk_id", "unsorted": "uid"}
_VERSION_FIELDS = ("updated_at", "last_modified")


def split_kommo_body(data: dict[str, Any]) -> tuple[dict[str, str], list[ParsedEvent]]:
    """Return the account block and one ParsedEvent per `entity[action][i]` item."""
    account_raw = data.get("account")
    if not isinstance(account_raw, dict):
        raise BadPayload("missing the account block (account[id] / account[subdomain])")
    account = {k: v for k, v in account_raw.items() if isinstance(v, str)}
    account_id = account.get("id", "") or account.get("subdomain", "")
    events: list[ParsedEvent] = []
    for entity, actions in data.items():
        if entity == "account":
            continue
        if not isinstance(actions, dict):
            continue  # a scalar beside the entity groups carries no event
        for action, group in actions.items():
            for item in indexed_items(group):
                events.append(_event(account_id, entity, action, item))
    if not events:
        raise BadPayload("no events in the body: expected keys like leads[add][0][id]")
    return account, events


def _event(account_id: str, entity: str, action: str, item: Any) -> ParsedEvent:
    if not isinstance(item, dict):
        item = {"value": item}
    event_type = f"kommo.{entity}.{action}"
    if action == "note" and isinstance(item.get("note"), dict):
        item = item["note"]
        ident = str(item.get("id", ""))
        key = make_key("kommo", account_id, entity, "note", ident) if ident else ""
        return _finish(event_type, key, item, ident, account_id, entity, action)
    ident = str(item.get(_ITEM_ID.get(entity, "id"), "") or "")
    if entity == "message" and ident:
        key = make_key("kommo", account_id, "message", ident)
    elif ident:
        # Without a timestamp (Digital Pipeline hooks, deletes) the content versions the item:
        # two different moves of one lead must not share a key.
        version = next((str(item[f]) for f in _VERSION_FIELDS if item.get(f)), "")
        key = make_key(
            "kommo", account_id, entity, action, ident, version or f"sha256:{content_hash(item)}"
        )
    else:
        key = ""
    return _finish(event_type, key, item, ident, account_id, entity, action)


def _finish(
    event_type: str,
    key: str,
    item: dict[str, Any],
    ident: str,
    account_id: str,
    entity: str,
    action: str,
) -> ParsedEvent:
    if not key:
        key = make_key("kommo", account_id, entity, action, "sha256", content_hash(item))
    return ParsedEvent(event_type=event_type, dedupe_key=key, payload=item, external_id=ident[:128])


# --- typed items (used by the handlers) --------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


def _as_list(value: Any) -> Any:
    if value is None or value == "":
        return []
    return indexed_items(value) if isinstance(value, dict) else value


def _as_bool(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    return value


def _as_decimal(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# Ids land in BIGINT columns: a larger number is an invalid payload, not a transient failure.
BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
OptInt = Annotated[BigInt | None, BeforeValidator(_blank_to_none)]
OptStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptBool = Annotated[bool | None, BeforeValidator(lambda v: _as_bool(_blank_to_none(v)))]


def kommo_datetime(value: object) -> datetime | None:
    """Unix seconds (as string or int), or Kommo's `YYYY-MM-DD HH:MM:SS` in the account's zone."""
    text = str(value or "").strip()
    if not text:
        return None
    if text.isdigit():
        try:  # "²".isdigit() is True; a timestamp past year 9999 does not fit a datetime
            return datetime.fromtimestamp(int(text), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
    try:
        naive = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return naive.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class KommoTag(_Tolerant):
    id: OptInt = None
    name: str = ""


class KommoFieldValue(_Tolerant):
    value: OptStr = None
    enum: OptStr = None


class KommoCustomField(_Tolerant):
    id: OptInt = None
    name: str = ""
    code: OptStr = None
    values: Annotated[list[KommoFieldValue], BeforeValidator(_as_list)] = Field(
        default_factory=list
    )

    def first_value(self) -> str:
        return next((v.value for v in self.values if v.value), "")


class KommoLead(_Tolerant):
    id: BigInt
    name: str = ""
    status_id: OptInt = None
    old_status_id: OptInt = None
    pipeline_id: OptInt = None
    old_pipeline_id: OptInt = None
    price: Annotated[Decimal | None, BeforeValidator(_as_decimal)] = None
    responsible_user_id: OptInt = None
    old_responsible_user_id: OptInt = None
    modified_user_id: OptInt = None
    last_modified: OptStr = None
    updated_at: OptStr = None
    created_at: OptStr = None
    tags: Annotated[list[KommoTag], BeforeValidator(_as_list)] = Field(default_factory=list)
    custom_fields: Annotated[list[KommoCustomField], BeforeValidator(_as_list)] = Field(
        default_factory=list
    )

    @property
    def version(self) -> datetime | None:
        return kommo_datetime(self.updated_at or self.last_modified)


class KommoContact(_Tolerant):
    id: BigInt
    name: str = ""
    type: OptStr = None
    responsible_user_id: OptInt = None
    last_modified: OptStr = None
    updated_at: OptStr = None
    linked_leads_id: Any = None
    custom_fields: Annotated[list[KommoCustomField], BeforeValidator(_as_list)] = Field(
        default_factory=list
    )

    @property
    def version(self) -> datetime | None:
        return kommo_datetime(self.updated_at or self.last_modified)

    def field_value(self, code: str) -> str:
        return next(
            (f.first_value() for f in self.custom_fields if (f.code or "").upper() == code), ""
        )

    def linked_lead_ids(self) -> list[int]:
        raw = self.linked_leads_id
        values = raw.values() if isinstance(raw, dict) else (raw if isinstance(raw, list) else [])
        return [int(v) for v in values if str(v).isdigit()]


class KommoAuthor(_Tolerant):
    id: OptStr = None
    type: OptStr = None
    name: str = ""
    avatar_url: OptStr = None


class KommoAttachment(_Tolerant):
    type: OptStr = None
    link: OptStr = None
    file_name: OptStr = None


class KommoMessage(_Tolerant):
    id: str
    chat_id: str
    talk_id: OptInt = None
    contact_id: OptInt = None
    text: str = ""
    created_at: OptStr = None
    message_type: OptStr = None
    type: OptStr = None
    element_type: OptStr = None
    element_id: OptInt = None
    entity_type: OptStr = None
    entity_id: OptInt = None
    origin: OptStr = None
    author: KommoAuthor = Field(default_factory=KommoAuthor)
    attachment: KommoAttachment | None = None

    @property
    def lead_id(self) -> int | None:
        if (self.entity_type or "").lower() in {"lead", "leads"} and self.entity_id:
            return self.entity_id
        if self.element_type == "2" and self.element_id:
            return self.element_id
        return None


class KommoTalk(_Tolerant):
    talk_id: BigInt
    chat_id: OptStr = None
    contact_id: OptInt = None
    entity_id: OptInt = None
    entity_type: OptStr = None
    is_in_work: OptBool = None
    is_read: OptBool = None
    origin: OptStr = None
    updated_at: OptStr = None


class KommoNote(_Tolerant):
    id: BigInt
    note_type: OptStr = None
    text: str = ""
    element_id: OptInt = None
    element_type: OptStr = None
    created_by: OptInt = None
    date_create: OptStr = None
    created_at: OptStr = None


class KommoUnsorted(_Tolerant):
    uid: OptStr = None
    category: OptStr = None
    pipeline_id: OptInt = None
    lead_id: OptInt = None
    data: dict[str, Any] = Field(default_factory=dict)
    source_data: dict[str, Any] = Field(default_factory=dict)
