"""Bot state changes racing each other, with real parallelism on Postgres (one database connection
per thread): the row lock makes every change count once, in order."""

import threading
from collections.abc import Callable
from itertools import pairwise

import pytest
from django.db import connection

from botcontrol.models import BotChange, BotState, ChangeVia
from botcontrol.services import bot_view, conversation_pause, conversation_resume
from kommo_hub.models import Conversation
from tests.outbox.support import committed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def together(work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(THREADS)
    results: list[object] = [None] * THREADS
    errors: list[str] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def test_the_same_command_delivered_to_eight_workers_at_once_pauses_once() -> None:
    conversation = Conversation.objects.create(chat_id="race-same-command")

    results = together(
        lambda _i: conversation_pause(
            conversation=conversation, via=ChangeVia.COMMAND, source_ref="message:dup"
        )
    )

    assert sum(r is not None for r in results) == 1
    assert BotChange.objects.count() == 1
    assert BotState.objects.get().version == 1


def test_pauses_and_resumes_at_once_each_count_and_the_cache_ends_on_the_last() -> None:
    conversation = Conversation.objects.create(chat_id="race-mixed")

    def flip(index: int) -> object:
        with committed():
            if index % 2:
                return conversation_resume(
                    conversation=conversation, via=ChangeVia.ADMIN, source_ref=f"r{index}"
                )
            return conversation_pause(
                conversation=conversation, via=ChangeVia.ADMIN, source_ref=f"p{index}"
            )

    results = together(flip)

    changes = list(BotChange.objects.order_by("pk"))
    state = BotState.objects.get()
    assert len(changes) == sum(r is not None for r in results)
    assert state.version == len(changes)
    assert state.mode == changes[-1].mode
    modes = [c.mode for c in changes]
    assert all(a != b for a, b in pairwise(modes))  # strictly alternating
    view = bot_view(conversation_id=conversation.pk)
    assert (view.mode, view.version) == (state.mode, state.version)
