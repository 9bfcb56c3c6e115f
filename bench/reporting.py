"""Reporting benchmark: how long each summary report takes with 10,000 and 100,000 leads.

The issue's promise: with 100,000 leads the summary endpoints answer within a second.

Seeds, with bulk_create into a throwaway database, N leads spread over 90 days in 4 areas of 5
salespeople each: per lead one current assignment, a conversation with a customer message, a
bot reply and (4 leads in 5) a salesperson's reply, an n8n reply action; every 5th lead an
appointment (booked / done / no-show / cancelled in turn), every 3rd a bot pause and every 6th a
reactivation. The first size is seeded, measured, then topped up to the second size and measured
again. Each report (kommo_hub.reporting.selectors over the whole 90 days, as the API runs them)
is run once to warm up, then 3 times; the median is printed, with the ratio between the sizes.

Database: a temporary SQLite file by default. With DATABASE_URL (or --database-url) set, a
scratch database is created on that server (named <the URL's database>_bench_<pid>, dropped at
the end);
the database the URL names is never written.

Exit status: 0 when every report at the largest size takes at most --budget seconds (1.0), 1 if
the benchmark could not run, 2 if a report is over budget.

Run: .venv/bin/python bench/reporting.py [--sizes 10000,100000] [--budget 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
SP = ZoneInfo("America/Sao_Paulo")
FIRST_DAY = date(2026, 8, 1)
DAYS = 90
AREAS = 4
PEOPLE_PER_AREA = 5
BATCH = 5000
RUNS = 3


def django_start(database_url: str, scratch: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "kommo_hub.settings",
            "KOMMO_HUB_IGNORE_DOTENV": "1",
            "KOMMO_HUB_VAR_DIR": str(scratch),
            "DATABASE_URL": database_url or f"sqlite:///{scratch / 'unused.sqlite3'}",
            "TASKS_BACKEND": "immediate",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def scratch_database_create(scratch: Path) -> tuple[Any, str]:
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(scratch / "bench_reporting.sqlite3")
    else:
        test["NAME"] = f"{connection.settings_dict['NAME']}_bench_{os.getpid()}"
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    return connection, old_name


def team_build() -> list[tuple[Any, Any]]:
    """(area, salesperson) pairs: AREAS areas of PEOPLE_PER_AREA people, weights 1–3."""
    from routing.models import Area, AreaMembership, Salesperson

    pairs = []
    for a in range(AREAS):
        area = Area.objects.create(name=f"Área {a}", slug=f"area-{a}")
        people = Salesperson.objects.bulk_create(
            Salesperson(name=f"Vendedor {a}-{i}") for i in range(PEOPLE_PER_AREA)
        )
        AreaMembership.objects.bulk_create(
            AreaMembership(area=area, salesperson=p, weight=1 + i % 3) for i, p in enumerate(people)
        )
        pairs.extend((area, p) for p in people)
    return pairs


def leads_seed(first: int, last: int, pairs: list[tuple[Any, Any]]) -> None:
    """Leads number first..last-1 and everything around them (see the module's docstring)."""
    from botcontrol.models import BotChange, BotMode, ChangeVia
    from kommo_hub.models import ActionStatus, Conversation, Lead, Message, OutboundAction
    from routing.models import Assignment, AssignmentKind, AssignmentStatus
    from scheduling.models import Appointment, AppointmentStatus

    created = Lead._meta.get_field("created_at")
    created.auto_now_add = False  # type: ignore[attr-defined]  # the seed sets its own dates
    statuses = list(AppointmentStatus)
    sources = ("website", "rdstation", "kommo")
    start = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=SP)
    span = DAYS * 24 * 3600
    for low in range(first, last, BATCH):
        numbers = range(low, min(last, low + BATCH))
        moments = {n: start + timedelta(seconds=(n * 7919) % span) for n in numbers}
        leads = Lead.objects.bulk_create(
            Lead(name=f"Lead {n}", source=sources[n % 3], created_at=moments[n]) for n in numbers
        )
        owner = {lead.pk: pairs[n % len(pairs)] for n, lead in zip(numbers, leads, strict=True)}
        when = {lead.pk: moments[n] for n, lead in zip(numbers, leads, strict=True)}
        Assignment.objects.bulk_create(
            Assignment(
                lead=lead,
                area=owner[lead.pk][0],
                salesperson=owner[lead.pk][1],
                kind=AssignmentKind.NEW,
                status=AssignmentStatus.ASSIGNED,
                explanation={"steps": ["bench"]},
                decided_at=when[lead.pk],
            )
            for lead in leads
        )
        conversations = Conversation.objects.bulk_create(
            Conversation(chat_id=f"chat-{lead.pk}", lead=lead) for lead in leads
        )
        messages = []
        for n, conversation in zip(numbers, conversations, strict=True):
            at = moments[n]
            messages.append(("in", "customer", at + timedelta(seconds=5), conversation, n))
            messages.append(("out", "bot", at + timedelta(seconds=30), conversation, n))
            if n % 5:
                reply = at + timedelta(seconds=60 + (n * 31) % 7200)
                messages.append(("out", "salesperson", reply, conversation, n))
        Message.objects.bulk_create(
            Message(
                conversation=conversation,
                external_id=f"m-{n}-{i}",
                direction=direction,
                author_kind=author,
                sent_at=at,
            )
            for i, (direction, author, at, conversation, n) in enumerate(messages)
        )
        OutboundAction.objects.bulk_create(
            OutboundAction(
                target="n8n",
                action="reply",
                idempotency_key=f"bench:reply:{lead.pk}",
                lead=lead,
                status=ActionStatus.DONE,
                delivered_at=when[lead.pk] + timedelta(seconds=30),
            )
            for lead in leads
        )
        Appointment.objects.bulk_create(
            Appointment(
                lead=lead,
                salesperson=owner[lead.pk][1],
                starts_at=when[lead.pk] + timedelta(days=1),
                ends_at=when[lead.pk] + timedelta(days=1, minutes=30),
                status=statuses[(n // 5) % len(statuses)],
                idempotency_key=f"bench:appt:{lead.pk}",
            )
            for n, lead in zip(numbers, leads, strict=True)
            if n % 5 == 0
        )
        BotChange.objects.bulk_create(
            BotChange(
                conversation=conversation,
                mode=BotMode.ACTIVE if n % 6 == 0 else BotMode.PAUSED,
                via=ChangeVia.EXPIRY if n % 6 == 0 else ChangeVia.TAKEOVER,
                at=moments[n] + timedelta(minutes=5),
            )
            for n, conversation in zip(numbers, conversations, strict=True)
            if n % 3 == 0
        )
    created.auto_now_add = True  # type: ignore[attr-defined]


def reports() -> dict[str, Callable[[], Any]]:
    from kommo_hub.reporting import selectors

    period = {"start": FIRST_DAY, "end": FIRST_DAY + timedelta(days=DAYS - 1)}
    return {
        "leads_per_day": lambda: selectors.leads_per_day(**period),
        "distribution": lambda: selectors.distribution(**period),
        "speed_to_lead": lambda: selectors.speed_to_lead(**period),
        "bot_activity": lambda: selectors.bot_activity(**period),
        "appointments": lambda: selectors.appointments_summary(**period),
        "funnel": lambda: selectors.funnel(**period),
    }


def measure() -> dict[str, float]:
    timings = {}
    for name, run in reports().items():
        run()
        samples = []
        for _ in range(RUNS):
            began = time.perf_counter()
            run()
            samples.append(time.perf_counter() - began)
        timings[name] = statistics.median(samples)
    return timings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        help="the two lead counts (default 10000,100000)",
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per report (1.0)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="a server for the scratch database (default: a temporary SQLite file)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    small, large = args.sizes
    with tempfile.TemporaryDirectory(prefix="kommo-hub-bench-reporting-") as scratch:
        django_start(args.database_url, Path(scratch))
        from django.db import DatabaseError

        try:
            connection, old_name = scratch_database_create(Path(scratch))
        except DatabaseError as exc:
            print(f"could not create the scratch database: {exc}", file=sys.stderr)
            return 1
        try:
            pairs = team_build()
            results = {}
            seeded = 0
            for size in (small, large):
                began = time.perf_counter()
                leads_seed(seeded, size, pairs)
                seeded = size
                print(f"seeded {size:,} leads in {time.perf_counter() - began:.1f} s", flush=True)
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("ANALYZE")
                results[size] = measure()
            vendor = connection.vendor
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    print(f"\nreport ({vendor})      {small:>10,} leads {large:>10,} leads   ratio")
    over = []
    for name in results[small]:
        a, b = results[small][name], results[large][name]
        print(f"{name:<20} {a * 1000:>13.1f} ms {b * 1000:>13.1f} ms {b / a:>7.1f}x")
        if b > args.budget:
            over.append(name)
    if over:
        print(f"over the {args.budget:.1f} s budget at {large:,} leads: {', '.join(over)}")
        return 2
    print(f"every report within {args.budget:.1f} s at {large:,} leads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
