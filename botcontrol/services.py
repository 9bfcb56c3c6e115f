"""Whether the AI may answer in a conversation: pause, resume, the silence clock, and the cached
view read on every incoming message.

Domain only: no HTTP and no outbox. The coordinator (kommo_hub/flows/bot.py) turns the BotChange
rows returned here into Kommo tags and notes, Kommo tasks and n8n handoffs.

State machine (one BotState row per conversation; no row = active):
- pause: active → paused (by whom, how, why, since, until). A pause while paused replaces the
  end (`until` / resume-after-silence) when an explicit one (command, note, admin, API) asks
  for a different end; automatic ones (takeover, handoff) never override a pause in place.
- resume: paused → active. A pause whose `until` has passed counts as active at once (readers
  check the time); the scheduler then records its end (via "expiry") so Kommo is told.
- automatic takeover: paused with resume_after_silence; it ends when no human has written for
  the area's takeover_resume_hours (BotState.last_human_at, moved forward by every human message).

Cache: one key per conversation holding (mode, until, via, by, version). A change writes the new
value when its transaction commits (set, not delete, so the next read is a hit; never over a
higher version, which a later change may have written first). A miss reads the row and adds the
value (add, never set: it cannot overwrite a newer value a change just wrote; inside a
transaction the add waits for the commit, so a rolled-back change is never cached). Values also
expire after CACHE_SECONDS, which bounds the damage of a lost write. The file cache of the
embedded install is shared by the processes of one machine; Redis (REDIS_URL) by all machines.
The last check before the AI sends reads the database (bot_is_active_db).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from botcontrol.commands import Command, command_parse
from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from kommo_hub.models import Conversation
from routing.models import Area, Assignment, Salesperson

__all__ = [
    "AreaRules",
    "BotView",
    "Command",
    "bot_changes_due",
    "bot_is_active",
    "bot_is_active_db",
    "bot_view",
    "command_parse",
    "conversation_area_rules",
    "conversation_expire",
    "conversation_owner",
    "conversation_pause",
    "conversation_resume",
    "human_activity",
]

logger = logging.getLogger("botcontrol")

CACHE_KEY = "botcontrol:state:v1:{}"
CACHE_SECONDS = 300
# Automatic pauses never replace a pause a person (or an earlier rule) set.
AUTOMATIC = frozenset({ChangeVia.TAKEOVER, ChangeVia.HANDOFF, ChangeVia.EXPIRY})


@dataclass(frozen=True)
class BotView:
    mode: str
    until: datetime | None
    via: str
    by_name: str
    version: int

    def active_at(self, at: datetime) -> bool:
        return _active(self.mode, self.until, at)


ACTIVE = BotView(mode=BotMode.ACTIVE, until=None, via="", by_name="", version=0)


def _active(mode: str, until: datetime | None, at: datetime) -> bool:
    """A pause whose end has come counts as active, whether or not its end is recorded yet."""
    return mode != BotMode.PAUSED or (until is not None and until <= at)


# --- Reading (hot path) ---------------------------------------------------------------------


def _key(conversation_id: int) -> str:
    return CACHE_KEY.format(conversation_id)


def _view_of(state: BotState) -> BotView:
    return BotView(
        mode=state.mode,
        until=state.until,
        via=state.via,
        by_name=state.by_name,
        version=state.version,
    )


def _cached(view: BotView) -> dict[str, Any]:
    return {
        "mode": view.mode,
        "until": view.until,
        "via": view.via,
        "by_name": view.by_name,
        "version": view.version,
    }


def bot_view(*, conversation_id: int) -> BotView:
    """The conversation's bot state: from the cache, else from the database (then cached)."""
    key = _key(conversation_id)
    try:
        cached = cache.get(key)
    except Exception:
        logger.warning("bot state cache unreadable", exc_info=True)
        cached = None
    if isinstance(cached, dict):
        try:
            return BotView(**cached)
        except TypeError:  # written by another version of this code
            pass
    row = (
        BotState.objects.filter(conversation_id=conversation_id)
        .values("mode", "until", "via", "by_name", "version")
        .first()
    )
    view = BotView(**row) if row else ACTIVE
    if connection.in_atomic_block:
        # What this transaction reads may be its own uncommitted change: cache it only once
        # committed (add: a newer value written meanwhile wins).
        transaction.on_commit(lambda: _cache_add(key, view), robust=True)
    else:
        _cache_add(key, view)
    return view


def _cache_add(key: str, view: BotView) -> None:
    try:
        cache.add(key, _cached(view), CACHE_SECONDS)
    except Exception:
        logger.warning("bot state cache not written", exc_info=True)


def _cache_set(key: str, view: BotView) -> None:
    try:
        current = cache.get(key)
        if isinstance(current, dict) and int(current.get("version") or 0) > view.version:
            return  # a later change of this conversation committed and was cached first
        cache.set(key, _cached(view), CACHE_SECONDS)
    except Exception:
        logger.warning("bot state cache not updated; dropping the key", exc_info=True)
        try:
            cache.delete(key)
        except Exception:  # noqa: BLE001
            logger.error("bot state cache key %s may be stale until it expires", key)


def _publish(state: BotState) -> None:
    """Once the change commits, every process reads the new state from the cache."""
    key, view = _key(state.conversation_id), _view_of(state)
    transaction.on_commit(lambda: _cache_set(key, view), robust=True)


def bot_is_active(*, conversation_id: int, at: datetime | None = None) -> bool:
    """May the AI answer now? Cached; a pause that ended (until <= at) counts as active."""
    return bot_view(conversation_id=conversation_id).active_at(at or timezone.now())


def bot_is_active_db(*, conversation_id: int, at: datetime | None = None) -> bool:
    """The same question asked of the database only: the last check before the AI sends."""
    row = BotState.objects.filter(conversation_id=conversation_id).values("mode", "until").first()
    if row is None:
        return True
    return _active(row["mode"], row["until"], at or timezone.now())


# --- Area rules and the conversation's owner --------------------------------------------------


@dataclass(frozen=True)
class AreaRules:
    auto_takeover: bool
    takeover_resume_hours: int
    max_pause_hours: int | None


def _rules(area: Area | None) -> AreaRules:
    # A lead nobody routed: the rules a new area gets by default.
    area = area or Area()
    return AreaRules(
        auto_takeover=area.auto_takeover,
        takeover_resume_hours=area.takeover_resume_hours,
        max_pause_hours=area.max_pause_hours,
    )


def _current_assignment(conversation: Conversation) -> Assignment | None:
    if conversation.lead_id is None:
        return None
    return (
        Assignment.objects.filter(lead_id=conversation.lead_id, is_current=True)
        .select_related("area", "salesperson")
        .first()
    )


def conversation_area_rules(conversation: Conversation) -> AreaRules:
    """The pause rules of the area the conversation's lead is assigned to."""
    assignment = _current_assignment(conversation)
    return _rules(assignment.area if assignment else None)


def conversation_owner(conversation: Conversation) -> Salesperson | None:
    """The salesperson the conversation's lead is currently assigned to."""
    assignment = _current_assignment(conversation)
    return assignment.salesperson if assignment else None


# --- Changing -------------------------------------------------------------------------------


def _locked(conversation: Conversation) -> BotState:
    state, _created = BotState.objects.get_or_create(conversation=conversation)
    return BotState.objects.select_for_update().get(pk=state.pk)


def _seen(conversation: Conversation, source_ref: str, mode: str) -> bool:
    return bool(source_ref) and (
        BotChange.objects.filter(
            conversation=conversation, source_ref=source_ref, mode=mode
        ).exists()
    )


def _record(
    state: BotState,
    *,
    via: str,
    by_name: str,
    by_salesperson: Salesperson | None,
    reason: str,
    source_ref: str,
    at: datetime,
) -> BotChange:
    state.version += 1
    state.save()
    _publish(state)
    return BotChange.objects.create(
        conversation_id=state.conversation_id,
        mode=state.mode,
        via=via,
        by_name=by_name,
        by_salesperson=by_salesperson,
        reason=reason,
        until=state.until,
        source_ref=source_ref[:128],
        at=at,
    )


def _by(by_name: str, by_salesperson: Salesperson | None) -> str:
    return (by_name or (by_salesperson.name if by_salesperson else ""))[:255]


def conversation_pause(
    *,
    conversation: Conversation,
    via: str,
    by_name: str = "",
    by_salesperson: Salesperson | None = None,
    reason: str = "",
    until: datetime | None = None,
    resume_after_silence: bool = False,
    source_ref: str = "",
    at: datetime | None = None,
) -> BotChange | None:
    """Pause the bot. None when nothing changed: a duplicate `source_ref`, or already paused and
    this pause would not change its end (automatic pauses never change it)."""
    if via not in ChangeVia.values:
        raise ValueError(f"unknown way of changing the bot: {via!r}")
    at = at or timezone.now()
    by = _by(by_name, by_salesperson)
    with transaction.atomic():
        state = _locked(conversation)
        if _seen(conversation, source_ref, BotMode.PAUSED):
            return None
        if not _active(state.mode, state.until, at):
            if via in AUTOMATIC:
                return None
            if (state.until, state.resume_after_silence) == (until, resume_after_silence):
                return None
        else:
            state.since = at
        state.mode = BotMode.PAUSED
        state.via, state.by_name, state.by_salesperson = via, by, by_salesperson
        state.reason = reason[:255]
        state.until, state.resume_after_silence = until, resume_after_silence
        if via == ChangeVia.TAKEOVER:
            state.last_human_at = max(filter(None, [state.last_human_at, at]))
        return _record(
            state,
            via=via,
            by_name=by,
            by_salesperson=by_salesperson,
            reason=state.reason,
            source_ref=source_ref,
            at=at,
        )


def _resume_locked(
    state: BotState,
    *,
    via: str,
    by_name: str,
    by_salesperson: Salesperson | None,
    reason: str,
    source_ref: str,
    at: datetime,
) -> BotChange:
    state.mode = BotMode.ACTIVE
    state.via, state.by_name, state.by_salesperson = via, by_name, by_salesperson
    state.reason = reason[:255]
    state.since, state.until, state.resume_after_silence = at, None, False
    return _record(
        state,
        via=via,
        by_name=by_name,
        by_salesperson=by_salesperson,
        reason=state.reason,
        source_ref=source_ref,
        at=at,
    )


def conversation_resume(
    *,
    conversation: Conversation,
    via: str,
    by_name: str = "",
    by_salesperson: Salesperson | None = None,
    reason: str = "",
    source_ref: str = "",
    at: datetime | None = None,
) -> BotChange | None:
    """Resume the bot. None when it was not paused or `source_ref` was already applied.

    A pause whose `until` has passed but whose end is not recorded yet is still resumed (and
    recorded), so Kommo's tag comes off."""
    if via not in ChangeVia.values:
        raise ValueError(f"unknown way of changing the bot: {via!r}")
    at = at or timezone.now()
    with transaction.atomic():
        state = _locked(conversation)
        if state.mode != BotMode.PAUSED or _seen(conversation, source_ref, BotMode.ACTIVE):
            return None
        return _resume_locked(
            state,
            via=via,
            by_name=_by(by_name, by_salesperson),
            by_salesperson=by_salesperson,
            reason=reason,
            source_ref=source_ref,
            at=at,
        )


def human_activity(*, conversation: Conversation, at: datetime) -> None:
    """A person wrote in the conversation at `at`: the silence clock starts again."""
    with transaction.atomic():
        state, _created = BotState.objects.get_or_create(conversation=conversation)
        BotState.objects.filter(pk=state.pk).filter(
            Q(last_human_at__isnull=True) | Q(last_human_at__lt=at)
        ).update(last_human_at=at)


# --- Pauses that end by themselves ----------------------------------------------------------

# Kept on the change as its reason and shown in the CRM note ("Bot retomado automaticamente após
# …"): written in the Kommo account's language (pt-BR), like the notes, not the admin viewer's.


def _local_clock(moment: datetime, reference: datetime) -> str:
    zone = timezone.get_default_timezone()
    local = moment.astimezone(zone)
    if local.date() == reference.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%d/%m %H:%M}"


def _due_reason(state: BotState, rules: AreaRules, now: datetime) -> str | None:
    """Why this paused state ends now, or None if it does not."""
    if state.mode != BotMode.PAUSED:
        return None
    if state.until is not None:
        if state.until <= now:
            return f"o fim da pausa (até {_local_clock(state.until, now)})"
        return None
    if not state.resume_after_silence or rules.takeover_resume_hours <= 0:
        return None
    quiet_since = state.last_human_at or state.since
    if quiet_since is None:
        return None
    if quiet_since + timedelta(hours=rules.takeover_resume_hours) <= now:
        return f"{rules.takeover_resume_hours} h sem mensagens da equipe"
    return None


def _rules_by_lead(lead_ids: Iterable[int | None]) -> dict[int, AreaRules]:
    ids = {pk for pk in lead_ids if pk is not None}
    current = Assignment.objects.filter(lead_id__in=ids, is_current=True).select_related("area")
    return {a.lead_id: _rules(a.area) for a in current}


def bot_changes_due(*, now: datetime) -> list[tuple[Conversation, str]]:
    """Paused conversations whose pause has ended by `now` (until reached, or the area's hours of
    human silence after a takeover), each with the reason; candidates for conversation_expire."""
    states = list(
        BotState.objects.filter(mode=BotMode.PAUSED)
        .filter(Q(until__lte=now) | Q(until__isnull=True, resume_after_silence=True))
        .select_related("conversation")
        .order_by("pk")
    )
    rules = _rules_by_lead(s.conversation.lead_id for s in states)
    due = []
    for state in states:
        reason = _due_reason(state, rules.get(state.conversation.lead_id or 0, _rules(None)), now)
        if reason is not None:
            due.append((state.conversation, reason))
    return due


def conversation_expire(*, conversation: Conversation, now: datetime) -> BotChange | None:
    """Record the end of a pause that is due (checked again under the row lock: a human message
    may have just moved the silence clock on). None when it is not due (any more)."""
    rules = conversation_area_rules(conversation)
    with transaction.atomic():
        state = _locked(conversation)
        reason = _due_reason(state, rules, now)
        if reason is None:
            return None
        return _resume_locked(
            state,
            via=ChangeVia.EXPIRY,
            by_name="",
            by_salesperson=None,
            reason=reason,
            source_ref="",
            at=now,
        )
