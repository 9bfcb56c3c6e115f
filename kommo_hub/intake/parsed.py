"""What a receiver hands to the inbox: one item of a request, with its dedupe key."""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

_MAX_KEY = 255


class BadPayload(ValueError):
    """The body was read but is not what this receiver accepts; the message names the problem."""


@dataclass(frozen=True)
class ParsedEvent:
    event_type: str
    dedupe_key: str
    payload: dict[str, Any]
    external_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def content_hash(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def make_key(*parts: object) -> str:
    key = ":".join(str(p) for p in parts)
    if len(key) > _MAX_KEY:
        head = key[:100]
        return f"{head}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key
