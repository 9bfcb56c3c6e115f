"""A pause racing an incoming message, with real parallelism on Postgres: two threads, each with
its own database connection, start together, many times. Whenever the message was stored after
the pause had committed, no AI reply carrying it ever reaches n8n: either the (cached) bot state
already said paused and no reply was scheduled, or the last check before sending, which reads
the database, skips it.

The reply window is 0 s here, so the reply is sent as soon as the message's transaction commits,
on the message's own thread: the closest a send can come to the pause.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from botcontrol.models import ChangeVia
from kommo_hub.flows.bot import bot_manual_pause
from kommo_hub.models import ActionStatus, Conversation, Message, OutboundAction
from tests.conversations.support import message_hook, n8n_bodies
from tests.intake.wire import FORM, KOMMO_URL, post
from tests.outbox.support import LocalHttpServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUNDS = 50


def in_thread(
    barrier: threading.Barrier, delay: float, work: Callable[[], None], errors: list[str]
) -> None:
    try:
        barrier.wait()
        time.sleep(delay)
        work()
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def test_a_message_stored_after_a_pause_committed_never_gets_an_ai_reply(
    settings: Any, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    settings.REPLY_COALESCE_SECONDS = 0
    seen: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        chat, lead_id = f"race-chat-{round_:03d}", 30_000_000 + round_
        first, racing = f"race-{round_:03d}-first", f"race-{round_:03d}-racing"
        text = f"race {round_}"
        now = timezone.now()
        response = post(
            Client(),
            KOMMO_URL,
            message_hook(first, f"oi {round_}", at=now, chat=chat, lead=lead_id),
            content_type=FORM,
        )
        assert response.status_code == 200
        conversation = Conversation.objects.get(chat_id=chat)
        paused: dict[str, Any] = {}
        errors: list[str] = []

        def pause(
            conversation: Conversation = conversation, paused: dict[str, Any] = paused
        ) -> None:
            bot_manual_pause(conversation=conversation, via=ChangeVia.ADMIN, by_name="Gestora")
            paused["committed_by"] = timezone.now()  # the pause's transaction is over

        def write(
            chat: str = chat, lead_id: int = lead_id, racing: str = racing, text: str = text
        ) -> None:
            body = message_hook(racing, text, at=timezone.now(), chat=chat, lead=lead_id)
            assert post(Client(), KOMMO_URL, body, content_type=FORM).status_code == 200

        # Either may go first: the message's thread starts up to 10 ms before or 30 ms after.
        offset = random.uniform(-0.010, 0.030)
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=in_thread, args=(barrier, delay, work, errors))
            for delay, work in ((max(0.0, -offset), pause), (max(0.0, offset), write))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []

        message = Message.objects.get(external_id=racing)
        carrying = [
            body
            for body in n8n_bodies(n8n, "reply")
            if any(m["id"] == racing for m in body["message"]["burst"])
            or any(m["text"] == text for m in body["conversation"]["last_messages"])
        ]
        reply = next(
            (
                a
                for a in OutboundAction.objects.filter(action="reply", conversation=conversation)
                if message.pk in a.payload["burst"]["messages"]
            ),
            None,
        )
        outcome = "no reply scheduled (bot state said paused)" if reply is None else reply.status
        if message.created_at > paused["committed_by"]:
            seen["stored after the pause"] += 1
            seen[f"after: {outcome}"] += 1
            assert carrying == [], f"round {round_}: a reply carried a message sent after a pause"
            assert reply is None or reply.status == ActionStatus.SKIPPED
        else:
            seen["stored before the pause committed"] += 1
            seen[f"before: {outcome}"] += 1

    print(dict(seen))
    assert seen["stored after the pause"] > 0
    assert sum(v for k, v in seen.items() if k.startswith("stored")) == ROUNDS


def test_two_messages_of_one_burst_processed_at_once_by_two_workers_make_one_reply(
    settings: Any, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    """New chats (the conversation, its lead and the routing are created by whichever message
    gets there first) and known ones: the conversation's lock lets one message open the burst
    and the other join it."""
    settings.REPLY_COALESCE_SECONDS = 30  # nothing is sent during the test
    for round_ in range(20):
        chat, lead_id = f"burst-chat-{round_:03d}", 31_000_000 + round_
        if round_ % 2:  # a known conversation: its first burst was answered already
            post(
                Client(),
                KOMMO_URL,
                message_hook(f"burst-{round_:03d}-0", "oi", chat=chat, lead=lead_id),
                content_type=FORM,
            )
            OutboundAction.objects.filter(action="reply").update(status=ActionStatus.DONE)
        ids = [f"burst-{round_:03d}-a", f"burst-{round_:03d}-b"]
        errors: list[str] = []

        def write(message_id: str, chat: str = chat, lead_id: int = lead_id) -> None:
            body = message_hook(message_id, message_id, at=timezone.now(), chat=chat, lead=lead_id)
            assert post(Client(), KOMMO_URL, body, content_type=FORM).status_code == 200

        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=in_thread,
                args=(barrier, 0.0, partial(write, message_id), errors),
            )
            for message_id in ids
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []

        conversation = Conversation.objects.get(chat_id=chat)
        [reply] = OutboundAction.objects.filter(
            action="reply", conversation=conversation, status=ActionStatus.PENDING
        )
        burst = Message.objects.filter(pk__in=reply.payload["burst"]["messages"])
        assert sorted(burst.values_list("external_id", flat=True)) == ids, f"round {round_}"
        assert conversation.lead is not None
    assert n8n.received == []
