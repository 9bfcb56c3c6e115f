"""`#pausar` / `#voltar` in a salesperson's message or a lead note.

Matched ignoring case and accents, anywhere in the text, with the aliases in the settings
BOT_PAUSE_COMMANDS and BOT_RESUME_COMMANDS. A pause may say for how long or until when, right after
the command: `#pausar 2h`, `#pausar 30m`, `#pausar 1h30`, `#pausar 90 min`, `#pausar até 18h`,
`#pausar ate 18:30`, `#pausar até às 18h30`. A clock time that has already passed today means
tomorrow. When a text holds several commands, the last one wins.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from django.conf import settings
from django.utils import timezone

PAUSE: Literal["pause"] = "pause"
RESUME: Literal["resume"] = "resume"

# What may follow a pause command (the text is already lower-case and without accents).
_MINUTES = r"(?:minutos?|mins?|m)"
_ARGUMENT = re.compile(
    r"""\s*(?:
        (?:por\s+)?ate\s+(?:as\s+)?(?P<hour>\d{1,2})(?:\s*(?::|h)\s*(?P<minute>\d{2})?)?(?:\s*h)?
      | (?:por\s+)?(?P<hours>\d{1,3})\s*(?:horas?|hrs?|h)(?:\s*(?P<and_minutes>\d{1,2})\s*(?:_M)?)?
      | (?:por\s+)?(?P<minutes>\d{1,4})\s*_M
    )(?![\w:])""".replace("_M", _MINUTES),
    re.VERBOSE,
)


@dataclass(frozen=True)
class Command:
    kind: Literal["pause", "resume"]
    until: datetime | None = None
    explicit_until: bool = False
    word: str = ""  # the alias as matched, e.g. "#pausar" (lower-case, no accents)


def text_fold(text: str) -> str:
    """Lower-case without accents: `#Pausár` → `#pausar`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _aliases() -> dict[str, Literal["pause", "resume"]]:
    kinds: dict[str, Literal["pause", "resume"]] = {}
    for word in settings.BOT_RESUME_COMMANDS:
        if text_fold(word).strip():
            kinds[text_fold(word).strip()] = RESUME
    for word in settings.BOT_PAUSE_COMMANDS:
        if text_fold(word).strip():
            kinds[text_fold(word).strip()] = PAUSE
    return kinds


def _pattern(words: list[str]) -> re.Pattern[str]:
    # Longest first, and no word character right after: `#pausarx` is not `#pausar`.
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w#])(?:{alternatives})(?!\w)")


def command_parse(text: str, *, now: datetime) -> Command | None:
    """The command in `text` (the last one if several), or None. `now` (aware) anchors `2h` and
    `até 18h` (in the project's time zone)."""
    kinds = _aliases()
    if not text or not kinds:
        return None
    folded = text_fold(text)
    matches = list(_pattern(list(kinds)).finditer(folded))
    if not matches:
        return None
    last = matches[-1]
    word = last.group(0)
    if kinds[word] == RESUME:
        return Command(kind=RESUME, word=word)
    until = _until(folded[last.end() :], now=now)
    return Command(kind=PAUSE, until=until, explicit_until=until is not None, word=word)


def _until(rest: str, *, now: datetime) -> datetime | None:
    found = _ARGUMENT.match(rest)
    if found is None:
        return None
    if found["hour"] is not None:
        hour, minute = int(found["hour"]), int(found["minute"] or 0)
        if hour > 23 or minute > 59:
            return None
        zone = timezone.get_default_timezone()
        local = now.astimezone(zone)
        candidate = datetime.combine(local.date(), time(hour, minute), tzinfo=zone)
        if candidate <= now:
            candidate = datetime.combine(
                local.date() + timedelta(days=1), time(hour, minute), tzinfo=zone
            )
        return candidate
    if found["hours"] is not None:
        length = timedelta(hours=int(found["hours"]), minutes=int(found["and_minutes"] or 0))
    else:
        length = timedelta(minutes=int(found["minutes"]))
    return now + length if length > timedelta(0) else None
