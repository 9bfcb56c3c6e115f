"""JSON log lines with phone numbers and e-mail addresses masked, whatever the caller passed."""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Sequences of 10+ digits, optionally with +, spaces, dots, dashes and parentheses between them.
# Not inside a longer token: UUIDs and hex ids stay readable (`id=4910a6…-bcab`).
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{8,}\d(?![\w-])")
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


def mask_email(value: str) -> str:
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)


def _mask_phone_match(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 10:
        return raw
    prefix = "+" if raw.startswith("+") else ""
    return f"{prefix}{digits[:4]}****{digits[-2:]}"


def mask_phone(value: str) -> str:
    return _PHONE.sub(_mask_phone_match, value)


# Receiver URLs carry their secret in the path (Django logs 4xx paths): never let it through.
_WEBHOOK_SECRET = re.compile(r"(/webhooks/[a-z0-9_-]+/)[^/\s\"']+")


def mask_pii(value: str) -> str:
    return _WEBHOOK_SECRET.sub(r"\1***", mask_phone(mask_email(value)))


def _mask_any(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict):
        return {k: _mask_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_any(v) for v in value]
    return value


class MaskPiiFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_pii(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _mask_any(value))
        return True


_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and isinstance(value, _PLAIN):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Mask the final line too: tracebacks and reprs can carry what the filter never saw.
        return mask_pii(json.dumps(line, default=str, ensure_ascii=False))
