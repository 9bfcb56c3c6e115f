"""Choosing one salesperson among the available members of an area. Pure: no database.

Each strategy returns the chosen candidate and the sentence that explains the choice; the
rotation state it changes is written back on the candidates (the caller saves it).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _

from routing.models import Strategy


@dataclass
class Candidate:
    salesperson_id: int
    name: str
    membership_id: int | None = None
    weight: int = 1
    priority: int = 1
    last_turn: int = 0
    current_weight: int = 0
    open_leads: int = 0
    new_today: int = 0
    max_open_leads: int | None = None
    max_new_leads_per_day: int | None = None
    last_assigned_at: datetime | None = None
    kommo_user_id: int | None = None
    is_duty: bool = False
    dropped: str = ""

    @property
    def kept(self) -> bool:
        return not self.dropped

    def over_cap(self) -> str:
        if self.max_open_leads is not None and self.open_leads >= self.max_open_leads:
            return _("reached the cap of open leads (%(n)d/%(max)d)") % {
                "n": self.open_leads,
                "max": self.max_open_leads,
            }
        if self.max_new_leads_per_day is not None and self.new_today >= self.max_new_leads_per_day:
            return _("reached the daily cap of new leads (%(n)d/%(max)d)") % {
                "n": self.new_today,
                "max": self.max_new_leads_per_day,
            }
        return ""


def _by_id(c: Candidate) -> int:
    return c.salesperson_id


def pick_round_robin(candidates: Sequence[Candidate], *, turn: int) -> tuple[Candidate, str]:
    """The one whose last turn is oldest: someone skipped while away keeps their place in line,
    and gets one lead (not the turns they missed) when back."""
    chosen = min(candidates, key=lambda c: (c.last_turn, _by_id(c)))
    chosen.last_turn = turn
    return chosen, _("round robin: longest since their last turn")


def pick_weighted(candidates: Sequence[Candidate]) -> tuple[Candidate, str]:
    """Smooth weighted round robin (as nginx): shares follow the weights within one lead.

    Only the available candidates accumulate credit, so time away earns no catch-up burst.
    """
    total = sum(c.weight for c in candidates)
    for c in candidates:
        c.current_weight += c.weight
    chosen = max(candidates, key=lambda c: (c.current_weight, -_by_id(c)))
    chosen.current_weight -= total
    share = chosen.weight * 100 / total
    return chosen, _("weighted: furthest behind their share (weight %(w)d, %(share).0f%%)") % {
        "w": chosen.weight,
        "share": share,
    }


def pick_least_loaded(candidates: Sequence[Candidate]) -> tuple[Candidate, str]:
    """Fewest open leads; ties go to whoever was assigned least recently (never first)."""

    def key(c: Candidate) -> tuple[int, int, float, int]:
        never = c.last_assigned_at is None
        stamp = 0.0 if never else c.last_assigned_at.timestamp()  # type: ignore[union-attr]
        return (c.open_leads, 0 if never else 1, stamp, _by_id(c))

    chosen = min(candidates, key=key)
    return chosen, _("least loaded: fewest open leads (%(n)d)") % {"n": chosen.open_leads}


def pick(strategy: str, candidates: Sequence[Candidate], *, turn: int) -> tuple[Candidate, str]:
    if not candidates:
        raise ValueError("no candidates")
    pickers: dict[str, Callable[[], tuple[Candidate, str]]] = {
        Strategy.ROUND_ROBIN: lambda: pick_round_robin(candidates, turn=turn),
        Strategy.WEIGHTED: lambda: pick_weighted(candidates),
        Strategy.LEAST_LOADED: lambda: pick_least_loaded(candidates),
    }
    chosen, why = pickers.get(strategy, pickers[Strategy.ROUND_ROBIN])()
    if strategy != Strategy.ROUND_ROBIN:
        chosen.last_turn = turn
    return chosen, why


def first_tier(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Only the best priority tier that has someone available takes part."""
    kept = [c for c in candidates if c.kept]
    if not kept:
        return []
    best = min(c.priority for c in kept)
    for c in kept:
        if c.priority != best:
            c.dropped = _("priority tier %(tier)d waits while tier %(best)d has someone") % {
                "tier": c.priority,
                "best": best,
            }
    return [c for c in kept if c.priority == best]
