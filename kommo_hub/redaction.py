"""Secrets out of what the hub stores: request bodies, parsed payloads, header values.

A value is redacted when its key (a JSON object key, a form field name such as
`contact[api_key]`) names a secret. Bodies without any such word are returned as they are, the
same string: the check is one case-insensitive search, cheap on the webhook hot path.
"""

import json
import re
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"secret|token|passw(?:or)?d|api[_-]?key|authorization|credential|private[_-]?key|cookie",
    re.IGNORECASE,
)
# A "name": "value" pair in JSON that does not parse as a whole (e.g. a cut excerpt).
_JSON_PAIR = re.compile(
    r'("[^"\\]*(?:' + SECRET_NAME.pattern + r')[^"\\]*"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
# The receivers' URLs carry their secret: /webhooks/<source>/<secret>/ (e.g. in a Referer).
WEBHOOK_PATH_SECRET = re.compile(r"(/webhooks/[a-z0-9_-]+/)[^/\s\"'?#&]+")


# Lower-case substrings every SECRET_NAME match contains (`in` is much faster than the regex).
_WORDS = ("secret", "token", "passw", "key", "authoriz", "credential", "cookie")
# A letter written as %XX or \\u00XX: a key name spelled that way would slip past the words.
_PERCENT_LETTER = re.compile(r"%(?:4[1-9A-Fa-f]|5[0-9Aa]|6[1-9A-Fa-f]|7[0-9Aa])")
_UNICODE_LETTER = re.compile(r"\\u00(?:4[1-9A-Fa-f]|5[0-9Aa]|6[1-9A-Fa-f]|7[0-9Aa])")


def _has_word(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _WORDS)


def might_hold_secret(text: str) -> bool:
    if _has_word(text):
        return True
    percent = "%" in text and _PERCENT_LETTER.search(text)
    unicode = "\\u00" in text and _UNICODE_LETTER.search(text)
    if not (percent or unicode):
        return False
    decoded = unquote_plus(text) if percent else text
    if unicode:
        decoded = decoded.encode("utf-8", "backslashreplace").decode("unicode_escape", "replace")
    return _has_word(decoded)


def redact_data(value: Any) -> tuple[Any, bool]:
    """A copy of a JSON-like value with the values of secret-named keys replaced; changed?"""
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, item in value.items():
            # An empty value hides nothing: kept, so the body is stored as it came.
            if isinstance(key, str) and SECRET_NAME.search(key) and item not in ("", None, [], {}):
                out[key] = REDACTED
                changed = True
            else:
                out[key], item_changed = redact_data(item)
                changed |= item_changed
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        items = [redact_data(item) for item in value]
        if any(changed for _, changed in items):
            return [item for item, _ in items], True
        return value, False
    return value, False


def _redact_form(text: str) -> str:
    pairs = text.split("&")
    changed = False
    for index, pair in enumerate(pairs):
        name, sep, value = pair.partition("=")
        if sep and value and SECRET_NAME.search(unquote_plus(name)):
            pairs[index] = f"{name}={REDACTED}"
            changed = True
    return "&".join(pairs) if changed else text


def redact_body(text: str) -> str:
    """The body to store: secret-named values replaced, otherwise the very same string."""
    if not might_hold_secret(text):
        return text
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            redacted, changed = redact_data(data)
            return json.dumps(redacted, ensure_ascii=False) if changed else text
        return _JSON_PAIR.sub(rf'\1"{REDACTED}"', text)
    return _redact_form(text)


def redact_payloads(payloads: list[Any]) -> list[Any] | None:
    """Redacted copies of parsed payloads, or None when none of them holds a secret."""
    results = [redact_data(payload) for payload in payloads]
    if not any(changed for _, changed in results):
        return None
    return [payload for payload, _ in results]


def mask_webhook_secrets(value: str) -> str:
    return WEBHOOK_PATH_SECRET.sub(r"\1***", value) if "/webhooks/" in value else value
