"""The three strategies and the priority tiers, as pure functions over candidates."""

from collections import Counter
from datetime import UTC, datetime

from routing.models import Strategy
from routing.strategies import Candidate, first_tier, pick


def people(*weights: int) -> list[Candidate]:
    return [
        Candidate(salesperson_id=i + 1, name=f"P{i + 1}", weight=w) for i, w in enumerate(weights)
    ]


def run(strategy: str, candidates: list[Candidate], leads: int, *, turn: int = 0) -> Counter[int]:
    got: Counter[int] = Counter()
    for n in range(leads):
        chosen, _ = pick(strategy, candidates, turn=turn + n + 1)
        got[chosen.salesperson_id] += 1
        chosen.open_leads += 1
    return got


def test_round_robin_gives_everyone_one_lead_in_turn() -> None:
    team = people(1, 1, 1)
    order = [pick(Strategy.ROUND_ROBIN, team, turn=n)[0].salesperson_id for n in range(1, 7)]
    assert order == [1, 2, 3, 1, 2, 3]


def test_round_robin_skipped_person_keeps_their_place_without_a_burst() -> None:
    team = people(1, 1, 1)
    turn = 0
    for _ in range(3):
        turn += 1
        pick(Strategy.ROUND_ROBIN, team, turn=turn)
    away, present = team[0], team[1:]
    for _ in range(10):  # P1 on vacation: ten leads between P2 and P3
        turn += 1
        pick(Strategy.ROUND_ROBIN, present, turn=turn)
    order = []
    for _ in range(6):
        turn += 1
        order.append(pick(Strategy.ROUND_ROBIN, team, turn=turn)[0].salesperson_id)
    assert away.salesperson_id == 1
    assert order == [1, 2, 3, 1, 2, 3]  # one lead back, not the five turns missed


def test_weighted_shares_match_the_weights_within_one_lead_at_every_point() -> None:
    team = people(3, 1)
    got: Counter[int] = Counter()
    for n in range(1, 401):
        got[pick(Strategy.WEIGHTED, team, turn=n)[0].salesperson_id] += 1
        assert abs(got[1] - n * 3 / 4) <= 1
        assert abs(got[2] - n * 1 / 4) <= 1
    assert got == {1: 300, 2: 100}


def test_weighted_interleaves_instead_of_giving_blocks() -> None:
    team = people(2, 1)
    order = [pick(Strategy.WEIGHTED, team, turn=n)[0].salesperson_id for n in range(1, 7)]
    assert order == [1, 2, 1, 1, 2, 1]


def test_weighted_person_back_from_time_off_gets_no_catch_up_burst() -> None:
    team = people(1, 1, 1)
    run(Strategy.WEIGHTED, team, 30)
    run(Strategy.WEIGHTED, team[1:], 30)  # P1 away for 30 leads
    got = run(Strategy.WEIGHTED, team, 30)
    assert got == {1: 10, 2: 10, 3: 10}


def test_least_loaded_picks_fewest_open_leads_then_least_recently_assigned() -> None:
    team = people(1, 1, 1)
    team[0].open_leads, team[1].open_leads, team[2].open_leads = 2, 1, 1
    team[1].last_assigned_at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    team[2].last_assigned_at = datetime(2026, 11, 25, 9, tzinfo=UTC)
    chosen, why = pick(Strategy.LEAST_LOADED, team, turn=1)
    assert chosen.salesperson_id == 3
    assert "1" in why


def test_least_loaded_prefers_someone_never_assigned_on_a_tie() -> None:
    team = people(1, 1)
    team[0].last_assigned_at = datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert pick(Strategy.LEAST_LOADED, team, turn=1)[0].salesperson_id == 2


def test_least_loaded_evens_out_the_load() -> None:
    team = people(1, 1, 1)
    team[0].open_leads = 5
    assert run(Strategy.LEAST_LOADED, team, 12) == {2: 6, 3: 5, 1: 1}


def test_only_the_best_available_priority_tier_takes_part() -> None:
    team = people(1, 1, 1)
    team[0].priority, team[1].priority, team[2].priority = 2, 1, 1
    team[1].dropped = "off shift"
    tier = first_tier(team)
    assert [c.salesperson_id for c in tier] == [3]
    assert team[0].dropped.startswith("priority tier 2")


def test_backup_tier_serves_when_the_first_tier_is_empty() -> None:
    team = people(1, 1)
    team[0].priority, team[1].priority = 1, 2
    team[0].dropped = "on vacation"
    assert [c.salesperson_id for c in first_tier(team)] == [2]


def test_over_cap_names_the_cap() -> None:
    c = Candidate(salesperson_id=1, name="Ana", open_leads=5, max_open_leads=5)
    assert c.over_cap() == "reached the cap of open leads (5/5)"
    c = Candidate(salesperson_id=1, name="Ana", new_today=3, max_new_leads_per_day=3)
    assert c.over_cap() == "reached the daily cap of new leads (3/3)"
    assert Candidate(salesperson_id=1, name="Ana", open_leads=4, max_open_leads=5).over_cap() == ""
