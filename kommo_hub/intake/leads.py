"""RD Station and website-form leads: split bodies into events and read them as one typed shape."""

from typing import Any

from pydantic import BaseModel, Field

from kommo_hub.intake.normalize import normalize_name
from kommo_hub.intake.parsed import BadPayload, ParsedEvent, content_hash, make_key

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

# Website forms in Brazil name their fields in Portuguese as often as in English.
_FORM_ALIASES = {
    "name": ("name", "nome", "full_name", "nome_completo"),
    "phone": ("phone", "telefone", "celular", "whatsapp", "mobile_phone", "tel"),
    "email": ("email", "e-mail", "e_mail"),
    "area": ("area", "área", "segmento"),
    "message": ("message", "mensagem", "msg"),
    "source": ("source", "origem"),
    "form": ("form", "form_id", "formulario", "identifier"),
}


class LeadIntake(BaseModel):
    """A lead from a form or RD Station, before normalization of phone and e-mail."""

    source: str
    identifier: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""
    area: str = ""
    message: str = ""
    utm: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    fields: dict[str, Any] = Field(default_factory=dict)


# --- RD Station ---------------------------------------------------------------------------------


def split_rdstation_body(body: Any) -> list[ParsedEvent]:
    if isinstance(body, dict) and isinstance(body.get("leads"), list):
        if not body["leads"]:
            raise BadPayload("'leads' is empty")
        return [_rd_legacy_event(item) for item in body["leads"]]
    if isinstance(body, dict) and isinstance(body.get("event_type"), str):
        contact = body.get("contact")
        if not isinstance(contact, dict):
            raise BadPayload("'contact' must be an object in an RD Station event")
        kind = body["event_type"].removeprefix("WEBHOOK.").lower()
        ident = str(contact.get("uuid") or contact.get("email") or "")
        stamp = str(body.get("event_timestamp") or body.get("timestamp") or "")
        key = (
            make_key("rdstation", kind, ident, stamp)
            if ident and stamp
            else make_key("rdstation", kind, "sha256", content_hash(body))
        )
        return [ParsedEvent(f"rdstation.{kind}", key, body, external_id=ident[:128])]
    raise BadPayload(
        "expected an RD Station body: {'leads': [...]} (legacy) "
        "or {'event_type': ..., 'contact': {...}}"
    )


def _rd_legacy_event(item: Any) -> ParsedEvent:
    if not isinstance(item, dict):
        raise BadPayload("every item of 'leads' must be an object")
    ident = str(item.get("uuid") or item.get("id") or item.get("email") or "")
    last = _str_dict(item.get("last_conversion"))
    stamp = str(last.get("created_at") or item.get("created_at") or "")
    key = (
        make_key("rdstation", "converted", ident, stamp)
        if ident and stamp
        else make_key("rdstation", "converted", "sha256", content_hash(item))
    )
    return ParsedEvent("rdstation.legacy_conversion", key, item, external_id=ident[:128])


def _str_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tag_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t) for t in value if t]
    return [value] if isinstance(value, str) and value else []


def rd_legacy_lead(item: dict[str, Any]) -> LeadIntake:
    last = _str_dict(item.get("last_conversion"))
    content = _str_dict(last.get("content"))
    origin = _str_dict(last.get("conversion_origin"))
    phone = item.get("mobile_phone") or content.get("telefone") or item.get("personal_phone") or ""
    extra = {
        k: v for k, v in content.items() if k not in {"identificador", "email_lead", "telefone"}
    }
    extra.update(_str_dict(item.get("custom_fields")))
    for key in ("company", "job_title", "city", "state", "lead_stage", "fit_score", "interest"):
        if item.get(key) not in (None, ""):
            extra[key] = item[key]
    return LeadIntake(
        source="rdstation",
        identifier=str(content.get("identificador") or ""),
        name=normalize_name(item.get("name") or content.get("nome")),
        phone=str(phone),
        email=str(item.get("email") or content.get("email_lead") or ""),
        message=str(content.get("Mensagem") or content.get("mensagem") or ""),
        utm=_utm_from_origin(origin),
        tags=_tag_list(item.get("tags")),
        fields=extra,
    )


def rd_converted_lead(body: dict[str, Any]) -> LeadIntake:
    contact = _str_dict(body.get("contact"))
    extra: dict[str, Any] = {k: v for k, v in contact.items() if k.startswith("cf_")}
    for key in ("job_title", "city", "state"):
        if contact.get(key):
            extra[key] = contact[key]
    company = _str_dict(contact.get("company"))
    if company.get("name"):
        extra["company"] = company["name"]
    funnel = _str_dict(contact.get("funnel"))
    if funnel.get("origin"):
        extra["origin"] = funnel["origin"]
    phone = contact.get("mobile_phone") or contact.get("personal_phone") or ""
    return LeadIntake(
        source="rdstation",
        identifier=str(body.get("event_identifier") or ""),
        name=normalize_name(contact.get("name")),
        phone=str(phone),
        email=str(contact.get("email") or ""),
        tags=_tag_list(contact.get("tags")),
        fields=extra,
    )


def _utm_from_origin(origin: dict[str, Any]) -> dict[str, str]:
    pairs = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "campaign"}
    return {utm: str(origin[key]) for utm, key in pairs.items() if origin.get(key)}


# --- Website / generic forms -----------------------------------------------------------------


def form_lead(fields: dict[str, Any]) -> LeadIntake:
    lowered = {str(k).strip().lower(): v for k, v in fields.items()}
    picked: dict[str, str] = {}
    used: set[str] = set()
    for canonical, aliases in _FORM_ALIASES.items():
        for alias in aliases:
            value = lowered.get(alias)
            if value not in (None, "") and not isinstance(value, dict | list):
                picked[canonical] = str(value).strip()
                used.add(alias)
                break
    utm = {k: str(lowered[k]) for k in UTM_KEYS if lowered.get(k) not in (None, "")}
    used.update(UTM_KEYS)
    extra = {k: v for k, v in fields.items() if str(k).strip().lower() not in used}
    tags_raw = extra.pop("tags", [])
    tags = [str(t) for t in tags_raw] if isinstance(tags_raw, list) else [str(tags_raw)]
    return LeadIntake(
        source=picked.get("source") or "website",
        identifier=picked.get("form", ""),
        name=normalize_name(picked.get("name")),
        phone=picked.get("phone", ""),
        email=picked.get("email", ""),
        area=picked.get("area", ""),
        message=picked.get("message", ""),
        utm=utm,
        tags=[t for t in tags if t],
        fields=extra,
    )
