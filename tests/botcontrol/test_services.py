"""The bot state of a conversation: pause and resume with their history, the silence clock, and
the cache every incoming message reads (real file cache, real database)."""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.cache import cache, caches
from django.db import transaction

from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from botcontrol.services import (
    CACHE_KEY,
    BotView,
    bot_changes_due,
    bot_is_active,
    bot_is_active_db,
    bot_view,
    conversation_expire,
    conversation_pause,
    conversation_resume,
    human_activity,
)
from tests.botcontrol.support import NOW, Team, team_build
from tests.outbox.support import committed

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


class Rollback(Exception):
    pass


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def team() -> Team:
    return team_build(takeover_resume_hours=2, max_pause_hours=24)


def pause(team: Team, **kwargs: Any) -> BotChange | None:
    values: dict[str, Any] = {"via": ChangeVia.ADMIN, "by_name": "Carlos"} | kwargs
    with committed():
        return conversation_pause(conversation=team.conversation, **values)


def resume(team: Team, **kwargs: Any) -> BotChange | None:
    values: dict[str, Any] = {"via": ChangeVia.ADMIN, "by_name": "Carlos"} | kwargs
    with committed():
        return conversation_resume(conversation=team.conversation, **values)


# --- State and history ------------------------------------------------------------------------


def test_a_conversation_without_a_state_row_is_active(team: Team) -> None:
    assert bot_view(conversation_id=team.conversation.pk) == BotView("active", None, "", "", 0)
    assert bot_is_active(conversation_id=team.conversation.pk) is True
    assert bot_is_active_db(conversation_id=team.conversation.pk) is True
    assert not BotState.objects.exists()


def test_pause_and_resume_record_who_how_why_since_until_and_the_history(team: Team) -> None:
    until = NOW + timedelta(hours=2)
    paused = pause(
        team,
        via=ChangeVia.COMMAND,
        by_name="",
        by_salesperson=team.carlos,
        reason="#pausar",
        until=until,
        source_ref="message:m1",
    )
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        resumed = resume(team, via=ChangeVia.NOTE, by_name="Ana", reason="#voltar")

    assert paused is not None
    assert resumed is not None
    state = BotState.objects.get()
    assert (state.mode, state.via, state.by_name, state.reason) == (
        BotMode.ACTIVE,
        ChangeVia.NOTE,
        "Ana",
        "#voltar",
    )
    assert (state.since, state.until, state.version) == (NOW + timedelta(minutes=10), None, 2)
    assert list(
        BotChange.objects.order_by("at").values_list(
            "mode", "via", "by_name", "by_salesperson", "reason", "until", "source_ref", "at"
        )
    ) == [
        ("paused", "command", "Carlos", team.carlos.pk, "#pausar", until, "message:m1", NOW),
        ("active", "note", "Ana", None, "#voltar", None, "", NOW + timedelta(minutes=10)),
    ]


def test_the_same_command_delivered_twice_changes_the_state_once(team: Team) -> None:
    first = pause(team, source_ref="message:m1", until=NOW + timedelta(hours=2))
    again = pause(team, source_ref="message:m1", until=NOW + timedelta(hours=3))
    resume(team, source_ref="message:m2")
    later_again = pause(team, source_ref="message:m1", until=NOW + timedelta(hours=3))

    assert first is not None
    assert (again, later_again) == (None, None)
    assert BotChange.objects.filter(mode="paused").count() == 1
    assert BotState.objects.get().mode == BotMode.ACTIVE


def test_a_new_pause_while_paused_replaces_its_end_and_is_recorded(team: Team) -> None:
    pause(team, until=NOW + timedelta(hours=2))
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        extended = pause(team, via=ChangeVia.COMMAND, by_name="Ana", until=NOW + timedelta(hours=5))
        same = pause(team, via=ChangeVia.COMMAND, by_name="Ana", until=NOW + timedelta(hours=5))

    assert extended is not None
    assert extended.until == NOW + timedelta(hours=5)
    assert same is None
    state = BotState.objects.get()
    assert (state.since, state.until, state.by_name, state.version) == (
        NOW,
        NOW + timedelta(hours=5),
        "Ana",
        2,
    )
    assert BotChange.objects.count() == 2


def test_automatic_pauses_never_override_a_pause_in_place(team: Team) -> None:
    pause(team, until=NOW + timedelta(hours=2))

    takeover = pause(team, via=ChangeVia.TAKEOVER, resume_after_silence=True)
    handoff = pause(team, via=ChangeVia.HANDOFF, until=None)

    assert (takeover, handoff) == (None, None)
    assert BotState.objects.get().until == NOW + timedelta(hours=2)


def test_resuming_an_active_conversation_changes_nothing(team: Team) -> None:
    assert resume(team) is None
    assert not BotChange.objects.exists()


def test_an_unknown_way_of_changing_is_refused(team: Team) -> None:
    with pytest.raises(ValueError, match="unknown way"):
        conversation_pause(conversation=team.conversation, via="telepathy")


def test_human_activity_only_moves_the_silence_clock_forward(team: Team) -> None:
    human_activity(conversation=team.conversation, at=NOW)
    human_activity(conversation=team.conversation, at=NOW - timedelta(minutes=5))
    assert BotState.objects.get().last_human_at == NOW
    human_activity(conversation=team.conversation, at=NOW + timedelta(minutes=5))
    assert BotState.objects.get().last_human_at == NOW + timedelta(minutes=5)
    assert BotState.objects.get().mode == BotMode.ACTIVE


# --- Pauses that end -----------------------------------------------------------------------


def test_a_pause_whose_end_has_come_counts_as_active_before_it_is_recorded(team: Team) -> None:
    pause(team, until=NOW + timedelta(hours=1))
    assert bot_is_active(conversation_id=team.conversation.pk) is False

    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert bot_is_active(conversation_id=team.conversation.pk) is True
        assert bot_is_active_db(conversation_id=team.conversation.pk) is True
        assert BotState.objects.get().mode == BotMode.PAUSED
        assert bot_changes_due(now=NOW + timedelta(hours=1)) == [
            (team.conversation, "o fim da pausa (até 14:30)")
        ]


def test_a_takeover_ends_after_the_areas_hours_of_human_silence(team: Team) -> None:
    human_activity(conversation=team.conversation, at=NOW)
    pause(team, via=ChangeVia.TAKEOVER, resume_after_silence=True)
    human_activity(conversation=team.conversation, at=NOW + timedelta(minutes=50))

    assert bot_changes_due(now=NOW + timedelta(hours=2)) == []
    assert bot_changes_due(now=NOW + timedelta(hours=2, minutes=50)) == [
        (team.conversation, "2 h sem mensagens da equipe")
    ]


def test_expiry_checks_again_under_the_lock_and_records_the_end_once(team: Team) -> None:
    pause(team, via=ChangeVia.TAKEOVER, resume_after_silence=True)
    later = NOW + timedelta(hours=2)
    [(conversation, _reason)] = bot_changes_due(now=later)
    human_activity(conversation=team.conversation, at=later - timedelta(minutes=1))  # just now

    assert conversation_expire(conversation=conversation, now=later) is None
    with committed():
        change = conversation_expire(conversation=conversation, now=later + timedelta(hours=2))
    assert change is not None
    assert (change.mode, change.via, change.reason) == (
        "active",
        "expiry",
        "2 h sem mensagens da equipe",
    )
    assert conversation_expire(conversation=conversation, now=later + timedelta(hours=3)) is None


def test_no_resume_hours_means_a_takeover_lasts_until_someone_resumes(team: Team) -> None:
    team.area.takeover_resume_hours = 0
    team.area.save()
    pause(team, via=ChangeVia.TAKEOVER, resume_after_silence=True)

    assert bot_changes_due(now=NOW + timedelta(days=30)) == []


# --- The cache ------------------------------------------------------------------------------


def cache_key(team: Team) -> str:
    return CACHE_KEY.format(team.conversation.pk)


def test_after_warm_up_reading_the_state_makes_no_database_query(
    team: Team, django_assert_num_queries: Any
) -> None:
    pause(team, until=NOW + timedelta(hours=2))
    cache.clear()
    with committed():
        warm = bot_view(conversation_id=team.conversation.pk)

    with django_assert_num_queries(0):
        assert bot_view(conversation_id=team.conversation.pk) == warm
        assert bot_is_active(conversation_id=team.conversation.pk) is False
    assert warm == BotView("paused", NOW + timedelta(hours=2), "admin", "Carlos", 1)


def test_a_never_paused_conversation_is_cached_too(
    team: Team, django_assert_num_queries: Any
) -> None:
    with committed():
        bot_is_active(conversation_id=team.conversation.pk)
    with django_assert_num_queries(0):
        assert bot_is_active(conversation_id=team.conversation.pk) is True


def test_a_change_replaces_the_cached_state_when_it_commits(
    team: Team, django_assert_num_queries: Any
) -> None:
    with committed():
        assert bot_is_active(conversation_id=team.conversation.pk) is True

    with committed():
        conversation_pause(conversation=team.conversation, via=ChangeVia.ADMIN, by_name="Carlos")
        # Not committed yet: other readers still see the committed state.
        assert cache.get(cache_key(team))["mode"] == "active"

    with django_assert_num_queries(0):
        assert bot_view(conversation_id=team.conversation.pk) == BotView(
            "paused", None, "admin", "Carlos", 1
        )
    resume(team)
    with django_assert_num_queries(0):
        view = bot_view(conversation_id=team.conversation.pk)
    assert (view.mode, view.version) == ("active", 2)


def test_a_change_that_rolls_back_never_reaches_the_cache(team: Team) -> None:
    with committed(), contextlib.suppress(Rollback), transaction.atomic():
        conversation_pause(conversation=team.conversation, via=ChangeVia.ADMIN)
        assert bot_view(conversation_id=team.conversation.pk).mode == "paused"  # own change
        raise Rollback
    assert cache.get(cache_key(team)) is None
    assert bot_is_active(conversation_id=team.conversation.pk) is True


def test_a_cached_pause_whose_end_has_passed_reads_as_active(
    team: Team, django_assert_num_queries: Any
) -> None:
    pause(team, until=NOW + timedelta(minutes=1))
    with (
        time_machine.travel(NOW + timedelta(minutes=1), tick=False),
        django_assert_num_queries(0),
    ):
        assert bot_view(conversation_id=team.conversation.pk).mode == "paused"
        assert bot_is_active(conversation_id=team.conversation.pk) is True
    with django_assert_num_queries(0):
        assert bot_is_active(conversation_id=team.conversation.pk, at=NOW) is False


def test_another_cache_connection_reads_the_change_from_the_shared_cache(team: Team) -> None:
    pause(team, until=NOW + timedelta(hours=2))

    other = caches.create_connection("default")  # a fresh handle, as another process has
    assert other.get(cache_key(team)) == {
        "mode": "paused",
        "until": NOW + timedelta(hours=2),
        "via": "admin",
        "by_name": "Carlos",
        "version": 1,
    }
    resume(team)
    assert other.get(cache_key(team))["mode"] == "active"


def test_another_process_reads_the_pause_from_the_cache_without_the_database(
    team: Team, settings: Any, tmp_path: Path
) -> None:
    """A real second Python process (as run_hub's worker is) with the embedded settings, whose
    database is empty: it can only answer from the shared file cache."""
    var_dir = tmp_path / "var"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(var_dir / "cache"),
        }
    }
    pause(team, until=NOW + timedelta(hours=2))
    # The other process shares this one's clock: the cache entry's expiry is on the frozen clock.
    script = (
        "import datetime, django, json, time_machine; django.setup(); "
        f"now = datetime.datetime.fromisoformat({NOW.isoformat()!r}); "
        "time_machine.travel(now, tick=False).start(); "
        "from botcontrol.services import bot_view; "
        f"v = bot_view(conversation_id={team.conversation.pk}); "
        "print(json.dumps([v.mode, v.until.isoformat(), v.by_name, v.version]))"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL"} and not key.startswith("PYTEST")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
        "KOMMO_HUB_VAR_DIR": str(var_dir),
        "KOMMO_HUB_IGNORE_DOTENV": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    mode, until, by_name, version = json.loads(done.stdout)
    assert (mode, datetime.fromisoformat(until), by_name, version) == (
        "paused",
        NOW + timedelta(hours=2),
        "Carlos",
        1,
    )
