"""Normalization of untrusted contact data: phone to E.164, e-mail, names. Never guesses."""

import re
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalized:
    raw: str
    value: str  # normalized, or "" when the raw value is missing or invalid

    @property
    def is_valid(self) -> bool:
        return bool(self.value)


def normalize_phone(raw: object, *, region: str | None = None) -> Normalized:
    text = str(raw or "").strip()[:64]
    if not text:
        return Normalized(raw="", value="")
    try:
        number = phonenumbers.parse(text, region or settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return Normalized(raw=text, value="")
    if not phonenumbers.is_valid_number(number):
        return Normalized(raw=text, value="")
    return Normalized(
        raw=text, value=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    )


def normalize_email(raw: object) -> Normalized:
    text = str(raw or "").strip()[:254]
    if not text:
        return Normalized(raw="", value="")
    candidate = text.lower()
    try:
        validate_email(candidate)
    except ValidationError:
        return Normalized(raw=text, value="")
    return Normalized(raw=text, value=candidate)


def normalize_name(raw: object) -> str:
    return _SPACES.sub(" ", str(raw or "")).strip()[:255]
