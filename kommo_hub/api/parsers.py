"""A JSON parser that answers 400 for every body DRF's own would turn into a 500."""

import codecs
import json
import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class SafeJSONParser(JSONParser):
    """Deep nesting (RecursionError), NaN/Infinity and huge numbers are parse errors."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
        except (ValueError, RecursionError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {type(exc).__name__}") from None
