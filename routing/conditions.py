"""Routing rule conditions: the facts of a lead, validation, and matching without the database.

Matching semantics (kept predictable for the managers who write the rules):

- Text comparisons ignore case and surrounding whitespace; accents are significant
  ("São Paulo" does not equal "Sao Paulo").
- ``equals``: the whole value is equal. ``contains``: the value is a substring.
  ``one_of``: the value is a comma-separated list; any item equal holds.
  ``regex``: ``re.search`` with IGNORECASE over the first 1,000 characters of the subject,
  so a pattern never runs over a huge untrusted value. Patterns are compiled once.
- ``tag``: holds when ANY of the lead's tags satisfies the operator.
- ``field``: the named lead field (``fields`` plus ``name`` and ``email``); a missing
  field never matches, whatever the operator.
- ``area_code`` / ``state``: the DDD and UF derived from a Brazilian (+55) phone.
- ``utm_*``: the lead's UTM value of that name.
- An empty subject matches nothing.
- A rule holds when all its conditions hold; a rule without conditions matches every lead.
"""

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from kommo_hub.intake.normalize import normalize_phone
from kommo_hub.models import Lead
from routing.models import ConditionField, ConditionOperator, RoutingRule, RuleCondition

REGEX_SUBJECT_LIMIT = 1000
REGEX_MAX_LENGTH = 300
SHOWN_LIMIT = 80
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

_FIELD_NAME = re.compile(r"[\w .-]{1,120}")

DDD_STATES: dict[str, str] = {
    "11": "SP", "12": "SP", "13": "SP", "14": "SP", "15": "SP",
    "16": "SP", "17": "SP", "18": "SP", "19": "SP",
    "21": "RJ", "22": "RJ", "24": "RJ",
    "27": "ES", "28": "ES",
    "31": "MG", "32": "MG", "33": "MG", "34": "MG", "35": "MG", "37": "MG", "38": "MG",
    "41": "PR", "42": "PR", "43": "PR", "44": "PR", "45": "PR", "46": "PR",
    "47": "SC", "48": "SC", "49": "SC",
    "51": "RS", "53": "RS", "54": "RS", "55": "RS",
    "61": "DF",
    "62": "GO", "64": "GO",
    "63": "TO",
    "65": "MT", "66": "MT",
    "67": "MS",
    "68": "AC",
    "69": "RO",
    "71": "BA", "73": "BA", "74": "BA", "75": "BA", "77": "BA",
    "79": "SE",
    "81": "PE", "87": "PE",
    "82": "AL",
    "83": "PB",
    "84": "RN",
    "85": "CE", "88": "CE",
    "86": "PI", "89": "PI",
    "91": "PA", "93": "PA", "94": "PA",
    "92": "AM", "97": "AM",
    "95": "RR",
    "96": "AP",
    "98": "MA", "99": "MA",
}  # fmt: skip

_STATES = frozenset(DDD_STATES.values())


@dataclass(frozen=True)
class LeadFacts:
    source: str
    identifier: str
    utm: dict[str, str]
    tags: tuple[str, ...]
    fields: dict[str, str]
    phone: str
    area_code: str
    state: str


@dataclass(frozen=True)
class ConditionSpec:
    """A plain, picklable copy of a RuleCondition."""

    field: str
    field_name: str
    operator: str
    value: str

    @classmethod
    def of(cls, condition: RuleCondition) -> "ConditionSpec":
        return cls(
            field=str(condition.field),
            field_name=str(condition.field_name),
            operator=str(condition.operator),
            value=str(condition.value),
        )


@dataclass(frozen=True)
class CompiledRule:
    """Loaded once, matched many times with no database access."""

    id: int
    name: str
    position: int
    target_area_id: int | None
    target_salesperson_id: int | None
    conditions: tuple[ConditionSpec, ...]

    def matches(self, facts: LeadFacts) -> tuple[bool, list[str]]:
        why: list[str] = []
        for spec in self.conditions:
            held, seen = condition_holds(spec, facts)
            why.append(
                _("%(subject)s %(operator)s '%(value)s': %(verdict)s (%(seen)s)")
                % {
                    "subject": _subject_label(spec),
                    "operator": _operator_label(spec.operator),
                    "value": _shown(spec.value.strip()),
                    "verdict": _("yes") if held else _("no"),
                    "seen": seen,
                }
            )
            if not held:
                return False, why
        return True, why


def compile_rules(rules: Iterable[RoutingRule]) -> list[CompiledRule]:
    """Expects the rules with their conditions prefetched."""
    return [
        CompiledRule(
            id=rule.pk,
            name=rule.name,
            position=rule.position,
            target_area_id=rule.target_area_id,
            target_salesperson_id=rule.target_salesperson_id,
            conditions=tuple(ConditionSpec.of(c) for c in rule.conditions.all()),
        )
        for rule in rules
    ]


# --- Facts ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def _tags(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items: list[Any] = raw.split(",")
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        return ()
    tags = (_text(item.get("name")) if isinstance(item, dict) else _text(item) for item in items)
    return tuple(tag for tag in (t.strip() for t in tags) if tag)


def _fields(raw: Any, *, name: str, email: str) -> dict[str, str]:
    fields = {str(k): _text(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    # The lead's own name and e-mail win, but never blank out a value the form sent.
    if name:
        fields["name"] = name
    if email:
        fields["email"] = email
    return fields


def _facts(
    *,
    source: str,
    identifier: str,
    utm: dict[str, str],
    tags: tuple[str, ...],
    fields: dict[str, str],
    phone: str,
) -> LeadFacts:
    area_code = phone[3:5] if phone.startswith("+55") else ""
    if area_code not in DDD_STATES:
        area_code = ""
    return LeadFacts(
        source=source.strip(),
        identifier=identifier.strip(),
        utm=utm,
        tags=tags,
        fields=fields,
        phone=phone,
        area_code=area_code,
        state=DDD_STATES.get(area_code, ""),
    )


def lead_facts(lead: Lead) -> LeadFacts:
    phone = lead.phone
    if not phone and lead.contact_id is not None and lead.contact is not None:
        phone = lead.contact.phone
    raw_utm = lead.utm if isinstance(lead.utm, dict) else {}
    utm = {str(k).strip().lower(): _text(v).strip() for k, v in raw_utm.items()}
    return _facts(
        source=lead.source,
        identifier=lead.source_identifier,
        utm={k: v for k, v in utm.items() if v},
        tags=_tags(lead.tags),
        fields=_fields(lead.fields, name=lead.name, email=lead.email),
        phone=phone or "",
    )


def facts_from_sample(sample: dict[str, Any]) -> LeadFacts:
    """The facts of a made-up lead, from the admin's simulate form."""
    utm = {key: _text(sample.get(key)).strip() for key in UTM_FIELDS}
    return _facts(
        source=_text(sample.get("source")),
        identifier=_text(sample.get("identifier")),
        utm={k: v for k, v in utm.items() if v},
        tags=_tags(sample.get("tags")),
        fields=_fields(
            sample.get("fields"),
            name=_text(sample.get("name")).strip(),
            email=_text(sample.get("email")).strip(),
        ),
        phone=normalize_phone(_text(sample.get("phone"))).value,
    )


# --- Matching ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _items(value: str) -> list[str]:
    return [item for item in (part.strip().casefold() for part in value.split(",")) if item]


def _shown(text: str, limit: int = SHOWN_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _holds(operator: str, value: str, subject: str) -> bool:
    subject = subject.strip()
    if not subject:
        return False
    if operator == ConditionOperator.REGEX:
        try:
            pattern = _regex(value.strip())
        except re.error:
            return False  # saved around validation; never let it break routing
        return pattern.search(subject[:REGEX_SUBJECT_LIMIT]) is not None
    folded = subject.casefold()
    if operator == ConditionOperator.EQUALS:
        return folded == value.strip().casefold()
    if operator == ConditionOperator.CONTAINS:
        needle = value.strip().casefold()
        return bool(needle) and needle in folded
    if operator == ConditionOperator.ONE_OF:
        return folded in _items(value)
    return False


def _field_value(fields: dict[str, str], name: str) -> str | None:
    name = name.strip()
    if name in fields:
        return fields[name]
    folded = name.casefold()
    for key, value in fields.items():
        if key.strip().casefold() == folded:
            return value
    return None


def _seen(subject: str) -> str:
    return f"'{_shown(subject.strip())}'" if subject.strip() else _("empty")


def condition_holds(spec: ConditionSpec, facts: LeadFacts) -> tuple[bool, str]:
    """Whether the condition holds, and the subject value(s) seen, for the explanation."""
    field = spec.field
    if field == ConditionField.TAG:
        if not facts.tags:
            return False, _("no tags")
        held = any(_holds(spec.operator, spec.value, tag) for tag in facts.tags)
        return held, _("tags: %(tags)s") % {"tags": _shown(", ".join(facts.tags), 200)}
    if field == ConditionField.LEAD_FIELD:
        found = _field_value(facts.fields, spec.field_name)
        if found is None:
            return False, _("no such field")
        return _holds(spec.operator, spec.value, found), _seen(found)
    subjects: dict[str, str] = {
        ConditionField.SOURCE: facts.source,
        ConditionField.IDENTIFIER: facts.identifier,
        ConditionField.AREA_CODE: facts.area_code,
        ConditionField.STATE: facts.state,
    }
    if field in UTM_FIELDS:
        subject = facts.utm.get(field, "")
    elif field in subjects:
        subject = subjects[field]
    else:
        return False, _("unknown field")
    return _holds(spec.operator, spec.value, subject), _seen(subject)


def _subject_label(spec: ConditionSpec) -> str:
    return spec.field_name.strip() if spec.field == ConditionField.LEAD_FIELD else spec.field


def _operator_label(operator: str) -> str:
    labels: dict[str, str] = {
        ConditionOperator.EQUALS: _("equals"),
        ConditionOperator.CONTAINS: _("contains"),
        ConditionOperator.REGEX: _("matches"),
        ConditionOperator.ONE_OF: _("one of"),
    }
    return labels.get(operator, operator)


# --- Validation ----------------------------------------------------------------------------------


def condition_validate(*, field: str, field_name: str, operator: str, value: str) -> None:
    """Raise a ValidationError mapping each bad input to what is wrong with it."""
    errors: dict[str, str] = {}
    if field not in ConditionField.values:
        errors["field"] = _("Unknown field '%(field)s'") % {"field": field}
    if operator not in ConditionOperator.values:
        errors["operator"] = _("Unknown operator '%(operator)s'") % {"operator": operator}
    if field == ConditionField.LEAD_FIELD:
        if not field_name.strip():
            errors["field_name"] = _("Give the name of the lead field.")
        elif not _FIELD_NAME.fullmatch(field_name.strip()):
            errors["field_name"] = _(
                "Invalid field name '%(name)s': use 1 to 120 letters, digits, spaces, _ - or ."
            ) % {"name": _shown(field_name)}
    elif field_name.strip():
        errors["field_name"] = _("Only a lead field condition takes a field name.")
    if "field" not in errors and "operator" not in errors:
        problem = _value_problem(field, operator, value.strip())
        if problem:
            errors["value"] = problem
    if errors:
        raise ValidationError(errors)


def _value_problem(field: str, operator: str, value: str) -> str | None:
    if not value:
        return _("Give a value.")
    if operator == ConditionOperator.REGEX:
        if len(value) > REGEX_MAX_LENGTH:
            return _("The regular expression is too long (at most %(n)d characters).") % {
                "n": REGEX_MAX_LENGTH
            }
        try:
            re.compile(value)
        except re.error as exc:
            return _("Invalid regular expression: %(error)s") % {"error": exc}
        return None
    if operator == ConditionOperator.ONE_OF:
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            return _("List at least one value, separated by commas.")
    elif operator == ConditionOperator.EQUALS:
        items = [value]
    else:
        return None
    for item in items:
        if field == ConditionField.AREA_CODE and item not in DDD_STATES:
            return _("Unknown area code '%(code)s'") % {"code": item}
        if field == ConditionField.STATE and item.upper() not in _STATES:
            return _("Unknown state '%(state)s'") % {"state": item}
    return None


def phone_e164_or_error(raw: str) -> str:
    """The phone in E.164 (Brazil by default), or a ValidationError naming it."""
    normalized = normalize_phone(raw, region="BR")
    if not normalized.is_valid:
        raise ValidationError(
            _("Not a valid phone number: %(phone)s") % {"phone": normalized.raw or raw},
            code="phone",
        )
    return normalized.value
