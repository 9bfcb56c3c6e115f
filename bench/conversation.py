"""Conversation benchmark: database queries, cache reads and time per incoming customer message.

The issue's promise: the work one incoming WhatsApp message costs does not depend on how long
the conversation is or how many conversations there are, and with a warm cache the bot state
(paused or not) is read without touching the database. Four configurations, each built from
scratch in its own throwaway database:

    (5 previous messages, 1 conversation)      the baseline
    (500 previous messages, 1 conversation)
    (5 previous messages, 100 conversations)
    (500 previous messages, 100 conversations)

Every conversation belongs to a routed lead (one area, one salesperson) and has a BotState row
(active), and its previous messages alternate between the customer and the salesperson.

What is measured is the worker processing one `message[add]` event (intake.processing:
claim, handler, result), exactly as the task runs it, on the database task queue (the embedded
default: the reply's delivery task is written in the same transaction, deferred to the end of the
reply window). Messages go round-robin over the conversations, in pairs: the first of a pair
opens a burst (a new `reply` action), the second joins it; between pairs the reply is marked sent
(unmeasured), so each pair starts a new burst. Before measuring, every conversation's bot state
is read once (warm cache) and 5 pairs are processed unmeasured.

Side by side: each configuration has its own scratch database (and its own cache keys), built
first; then the pairs are measured in --rounds rounds (10), every round taking its share of each
configuration's pairs, in reversed order every other round, so that a slow spell of the machine
weighs on all of them alike (after each switch one unmeasured pair pays for the reconnection).

Per message: the queries (CaptureQueriesContext), how many of them touch a botcontrol table
(must be 0 on a warm cache), the cache gets and hits (the cache backend's `get` is wrapped in a
counting proxy inside this script only: measurement, not a test double), and the time. Printed
per configuration and kind of message, with each median time's ratio to the baseline's.

Database: temporary SQLite files by default. With DATABASE_URL (or --database-url) the scratch
databases are created on that server (bench_conversation_<pid>_<n>, dropped at the end); the
database the URL names is never written. The cache is the settings' default (a file cache in a
scratch directory, the embedded setup; Redis with REDIS_URL).

Exit status: 0 when the query counts are the same in every configuration and no measured message
read a botcontrol table; 2 otherwise (or a message was not processed as expected); 1 if the
benchmark could not run.

Run: .venv/bin/python bench/conversation.py [--messages N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARMUP_PAIRS = 5
KINDS = ("opens a burst", "joins the burst")


@dataclass
class Sample:
    queries: int
    botcontrol_queries: int
    cache_gets: int
    cache_hits: int
    ms: float


@dataclass
class Result:
    previous: int
    conversations: int
    setup_s: float = 0.0
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {k: [] for k in KINDS})
    unexpected: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.previous} msgs, {self.conversations} conv"

    def median_ms(self, kind: str) -> float:
        return statistics.median(s.ms for s in self.samples[kind])

    def p95_ms(self, kind: str) -> float:
        return percentile([s.ms for s in self.samples[kind]], 95)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# --- Django in a throwaway database -------------------------------------------------------------


def django_start(database_url: str, scratch: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
            "KOMMO_HUB_IGNORE_DOTENV": "1",
            "KOMMO_HUB_VAR_DIR": str(scratch),
            "DATABASE_URL": database_url or f"sqlite:///{scratch / 'unused.sqlite3'}",
            "TASKS_BACKEND": "database",
            "LOG_LEVEL": "WARNING",
            # n8n configured: the replies are real outbox rows waiting for their time.
            "N8N_WEBHOOK_URL": "http://127.0.0.1:9/webhook/kommo-hub",
            "N8N_WEBHOOK_SECRET": "bench-n8n-secret",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def scratch_databases_create(scratch: Path, count: int) -> tuple[Any, str, list[str]]:
    """Create and migrate one scratch database per configuration; returns (connection, the name
    to restore, the databases' names)."""
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    old_name = connection.settings_dict["NAME"]
    names = []
    for n in range(count):
        if connection.vendor == "sqlite":
            test["NAME"] = str(scratch / f"bench_conversation_{n}.sqlite3")
        else:
            test["NAME"] = f"bench_conversation_{os.getpid()}_{n}"  # never clobbers anything
        names.append(
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        )
    return connection, old_name, names


def scratch_databases_drop(connection: Any, old_name: str, names: list[str]) -> None:
    for name in names:
        database_use(connection, name, cache_prefix="")
        connection.creation.destroy_test_db(old_name, verbosity=0)


def database_use(connection: Any, name: str, *, cache_prefix: str) -> None:
    """Switch to a configuration's database, and its own cache keys (ids repeat across them)."""
    from django.core.cache import caches

    if connection.settings_dict["NAME"] != name:
        connection.close()
        connection.settings_dict["NAME"] = name
    caches["default"].key_prefix = cache_prefix


# --- Counting cache reads ------------------------------------------------------------------------


class CacheReads:
    """Wraps the default cache backend's `get` (this process, this thread) to count reads."""

    _MISS = object()

    def __init__(self) -> None:
        from django.core.cache import caches

        self.backend = caches["default"]
        self.original = self.backend.get
        self.gets = self.hits = 0
        self.backend.get = self._get  # type: ignore[method-assign]

    def _get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        self.gets += 1
        value = self.original(key, self._MISS, version=version)
        if value is self._MISS:
            return default
        self.hits += 1
        return value

    def reset(self) -> None:
        self.gets = self.hits = 0

    def close(self) -> None:
        self.backend.get = self.original  # type: ignore[method-assign]


# --- One configuration --------------------------------------------------------------------------


def world_build(previous: int, conversations: int) -> list[dict[str, Any]]:
    """One area and salesperson; `conversations` routed leads, each with its chat, an active
    BotState and `previous` messages. Returns what a hook needs for each conversation."""
    from django.utils import timezone

    from botcontrol.models import BotMode, BotState
    from kommo_hub.models import Contact, Conversation, Lead, Message
    from routing.models import (
        Area,
        AreaMembership,
        Assignment,
        AssignmentKind,
        AssignmentStatus,
        Salesperson,
        WorkingHours,
    )

    area = Area.objects.create(name="Vendas", slug="vendas", is_default=True)
    person = Salesperson.objects.create(name="Ana", kommo_user_id=9_876_501)
    midnight = clock_time(0)
    WorkingHours.objects.bulk_create(
        WorkingHours(salesperson=person, weekday=day, starts=midnight, ends=midnight)
        for day in range(7)
    )
    AreaMembership.objects.create(area=area, salesperson=person)
    now = timezone.now()
    chats = []
    for n in range(conversations):
        contact = Contact.objects.create(kommo_contact_id=22_000_000 + n, name=f"Cliente {n}")
        lead = Lead.objects.create(
            kommo_lead_id=18_000_000 + n, contact=contact, name=f"Cliente {n}", source="kommo"
        )
        Assignment.objects.create(  # routed earlier (routing has its own benchmark)
            lead=lead,
            salesperson=person,
            area=area,
            kind=AssignmentKind.NEW,
            status=AssignmentStatus.ASSIGNED,
            decided_at=now - timedelta(hours=1),
            responded_at=now - timedelta(minutes=50),
        )
        conversation = Conversation.objects.create(
            chat_id=f"bench-chat-{n:04d}",
            talk_id=4000 + n,
            lead=lead,
            kommo_contact_id=contact.kommo_contact_id,
            origin="waba",
            last_incoming_at=now - timedelta(minutes=10),
        )
        BotState.objects.create(conversation=conversation, mode=BotMode.ACTIVE)
        Message.objects.bulk_create(
            Message(
                conversation=conversation,
                external_id=f"bench-{n}-{i}",
                direction="in" if i % 2 == 0 else "out",
                author_kind="customer" if i % 2 == 0 else "salesperson",
                text=f"mensagem anterior {i}",
                sent_at=now - timedelta(minutes=10, seconds=previous - i),
            )
            for i in range(previous)
        )
        chats.append(
            {
                "conversation": conversation.pk,
                "chat_id": conversation.chat_id,
                "kommo_lead_id": lead.kommo_lead_id,
                "kommo_contact_id": contact.kommo_contact_id,
            }
        )
    return chats


_SECONDS = itertools.count()


def event_store(chat: dict[str, Any], text: str) -> int:
    """The InboundEvent the Kommo receiver would store for a customer's message (not measured)."""
    from django.utils import timezone

    from kommo_hub.models import InboundEvent, InboundRequest, Source

    message_id = str(uuid.uuid4())
    payload = {
        "id": message_id,
        "chat_id": chat["chat_id"],
        "talk_id": str(4000),
        "contact_id": str(chat["kommo_contact_id"]),
        "text": text,
        # Kommo's times are whole seconds; one more each, so every message is the newest.
        "created_at": str(int(timezone.now().timestamp()) + next(_SECONDS)),
        "message_type": "text",
        "element_type": "2",
        "element_id": str(chat["kommo_lead_id"]),
        "entity_type": "lead",
        "entity_id": str(chat["kommo_lead_id"]),
        "type": "incoming",
        "author": {"id": "9d8c7b6a-1111", "type": "external", "name": "Cliente"},
        "origin": "waba",
    }
    request = InboundRequest.objects.create(source=Source.KOMMO, body="(bench)")
    event = InboundEvent.objects.create(
        request=request,
        source=Source.KOMMO,
        event_type="kommo.message.add",
        dedupe_key=f"kommo:bench:message:{message_id}",
        external_id=message_id,
        payload=payload,
    )
    return int(event.pk)


def replies_sent() -> None:
    """What the worker would do when the reply window ends (not measured): a new burst next."""
    from django.utils import timezone

    from kommo_hub.models import ActionStatus, OutboundAction

    OutboundAction.objects.filter(
        action="reply", status__in=[ActionStatus.PENDING, ActionStatus.HELD]
    ).update(status=ActionStatus.DONE, delivered_at=timezone.now())


@dataclass
class Configuration:
    result: Result
    database: str
    chats: list[dict[str, Any]] = field(default_factory=list)
    pairs_done: int = 0

    @property
    def cache_prefix(self) -> str:
        return f"bench-{self.result.previous}-{self.result.conversations}"


def configuration_build(connection: Any, configuration: Configuration) -> None:
    from botcontrol.services import bot_is_active

    result = configuration.result
    database_use(connection, configuration.database, cache_prefix=configuration.cache_prefix)
    began = time.perf_counter()
    configuration.chats = world_build(result.previous, result.conversations)
    for chat in configuration.chats:  # warm cache: every conversation's bot state read once
        bot_is_active(conversation_id=chat["conversation"])
    result.setup_s = time.perf_counter() - began
    pairs_process(connection, None, configuration, WARMUP_PAIRS, measured=False)


def pairs_process(
    connection: Any,
    reads: CacheReads | None,
    configuration: Configuration,
    pairs: int,
    *,
    measured: bool,
) -> None:
    """`pairs` messages that open a burst, each followed by one that joins it, round-robin over
    the configuration's conversations; the reply is marked sent after each pair (unmeasured)."""
    from django.test.utils import CaptureQueriesContext

    from kommo_hub.intake.processing import event_process
    from kommo_hub.models import EventStatus, InboundEvent

    result = configuration.result
    for _ in range(pairs):
        n = configuration.pairs_done
        configuration.pairs_done += 1
        chat = configuration.chats[n % len(configuration.chats)]
        for kind in KINDS:
            event_id = event_store(chat, f"{kind} {n}")
            connection.queries_log.clear()
            if reads is not None:
                reads.reset()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                outcome = event_process(event_id=event_id)
                elapsed = time.perf_counter() - started
            event = InboundEvent.objects.get(pk=event_id)
            expected = "scheduled" if kind == KINDS[0] else "joined reply"
            if outcome != EventStatus.PROCESSED or expected not in event.result:
                result.unexpected.append(f"{kind}: {outcome} / {event.result}")
            if measured and reads is not None:
                sql = [q["sql"] for q in captured.captured_queries]
                result.samples[kind].append(
                    Sample(
                        queries=len(sql),
                        botcontrol_queries=sum('"botcontrol_' in s for s in sql),
                        cache_gets=reads.gets,
                        cache_hits=reads.hits,
                        ms=elapsed * 1000,
                    )
                )
        replies_sent()


def rounds_run(
    connection: Any, reads: CacheReads, configurations: list[Configuration], pairs: int, rounds: int
) -> None:
    """Side by side: every round measures a share of each configuration's pairs, the order of the
    configurations reversed every other round, so a slow spell of the machine weighs on all."""
    per_round = [pairs // rounds + (1 if r < pairs % rounds else 0) for r in range(rounds)]
    for round_, count in enumerate(per_round):
        order = configurations if round_ % 2 == 0 else configurations[::-1]
        for configuration in order:
            if not count:
                continue
            database_use(
                connection, configuration.database, cache_prefix=configuration.cache_prefix
            )
            pairs_process(connection, None, configuration, 1, measured=False)  # reconnected
            pairs_process(connection, reads, configuration, count, measured=True)


# --- Report -------------------------------------------------------------------------------------


def counts_text(values: list[int]) -> str:
    counted = Counter(values)
    if len(counted) == 1:
        return str(values[0])
    return " / ".join(f"{n}×{times}" for n, times in sorted(counted.items()))


def report(results: list[Result], pairs: int, vendor: str, cache_backend: str) -> bool:
    base = results[0]
    print()
    print(
        f"{pairs} message pairs per configuration through intake.processing.event_process "
        f"({vendor}; cache: {cache_backend})"
    )
    for kind in KINDS:
        print()
        print(f"message that {kind}")
        header = (
            f"{'configuration':<24} {'queries':>8} {'botcontrol':>10} {'cache get/hit':>14}"
            f" {'median ms':>10} {'p95 ms':>8} {'median ratio':>13}"
        )
        print(header)
        print("-" * len(header))
        for r in results:
            samples = r.samples[kind]
            gets = counts_text([s.cache_gets for s in samples])
            hits = counts_text([s.cache_hits for s in samples])
            print(
                f"{r.label:<24} {counts_text([s.queries for s in samples]):>8}"
                f" {counts_text([s.botcontrol_queries for s in samples]):>10}"
                f" {f'{gets}/{hits}':>14}"
                f" {r.median_ms(kind):>10.2f} {r.p95_ms(kind):>8.2f}"
                f" {r.median_ms(kind) / base.median_ms(kind):>12.2f}x"
            )
    print()
    ok = True
    for kind in KINDS:
        counts = {s.queries for r in results for s in r.samples[kind]}
        if len(counts) == 1:
            print(f"queries per message that {kind}: {counts.pop()} in every configuration: SAME")
        else:
            ok = False
            print(
                f"queries per message that {kind}: DIFFERENT — "
                + "; ".join(
                    f"{r.label}: {counts_text([s.queries for s in r.samples[kind]])}"
                    for r in results
                )
            )
    bot_reads = sum(s.botcontrol_queries for r in results for k in KINDS for s in r.samples[k])
    misses = sum(s.cache_gets - s.cache_hits for r in results for k in KINDS for s in r.samples[k])
    print(
        f"database reads of the bot state on a warm cache: {bot_reads} "
        f"({'ZERO' if bot_reads == 0 else 'NOT ZERO'}); cache misses: {misses}"
    )
    ok = ok and bot_reads == 0
    kind = KINDS[0]
    print(
        f"time ratio vs {base.label} (message that {kind}): "
        + ", ".join(
            f"{r.label} {r.median_ms(kind) / base.median_ms(kind):.2f}x" for r in results[1:]
        )
    )
    unexpected = [u for r in results for u in r.unexpected]
    if unexpected:
        ok = False
        print(f"FAILED: {len(unexpected)} message(s) not processed as expected: {unexpected[:3]}")
    return ok


def parse_sizes(text: str) -> tuple[int, int]:
    small, _, large = text.partition(",")
    sizes = int(small), int(large)
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Conversation benchmark: queries, cache reads and time per incoming message with"
            " short vs long conversations and one vs many conversations."
        ),
        epilog="Exit 0: constant queries, no bot-state database read; 2: not so; 1: could not run.",
    )
    parser.add_argument(
        "--messages", type=int, default=100, help="message pairs measured per configuration (100)"
    )
    parser.add_argument(
        "--previous",
        type=parse_sizes,
        default=(5, 500),
        help="few,many previous messages per conversation (5,500)",
    )
    parser.add_argument(
        "--conversations", type=parse_sizes, default=(1, 100), help="few,many conversations (1,100)"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="rounds the pairs are measured in, side by side (10)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="server for the scratch database (env DATABASE_URL; default: temporary SQLite)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    (few_msgs, many_msgs), (few_convs, many_convs) = args.previous, args.conversations
    sizes = [
        (few_msgs, few_convs),
        (many_msgs, few_convs),
        (few_msgs, many_convs),
        (many_msgs, many_convs),
    ]
    with tempfile.TemporaryDirectory(prefix="kommo-hub-bench-conversation-") as scratch:
        django_start(args.database_url, Path(scratch))
        from django.conf import settings
        from django.db import DatabaseError

        try:
            connection, old_name, names = scratch_databases_create(Path(scratch), len(sizes))
        except DatabaseError as exc:  # no database server, no right to create a database…
            print(f"could not create the scratch databases: {exc}", file=sys.stderr)
            return 1
        reads = CacheReads()
        try:
            configurations = [
                Configuration(Result(previous=previous, conversations=conversations), name)
                for (previous, conversations), name in zip(sizes, names, strict=True)
            ]
            for configuration in configurations:
                print(f"building {configuration.result.label}…", flush=True)
                configuration_build(connection, configuration)
            print(
                f"measuring {args.messages} message pairs per configuration, "
                f"in {args.rounds} rounds side by side…",
                flush=True,
            )
            rounds_run(connection, reads, configurations, args.messages, args.rounds)
            backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
            results = [c.result for c in configurations]
            ok = report(results, args.messages, connection.vendor, backend)
        finally:
            reads.close()
            scratch_databases_drop(connection, old_name, names)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
