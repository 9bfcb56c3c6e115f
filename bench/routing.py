"""Routing benchmark: database queries and time per assignment as rules and salespeople grow.

The issue's promise: the queries one assignment takes do not depend on how many rules or
salespeople there are. Four configurations, each built from scratch in a throwaway database:

    (10 rules, 5 people)   the baseline
    (1000 rules, 5 people)
    (10 rules, 500 people)
    (1000 rules, 500 people)

Rules are the worst case: every rule has three conditions of mixed fields and operators
(equals / contains / regex / one_of on utm, source, identifier, tag and lead fields); the first
two hold for the benchmark's leads and the third does not, so every condition of every rule is
evaluated, and only the last rule matches. It sends the lead to the area whose members are the
salespeople (weighted strategy, weights 1–3, everyone always on shift).

For each configuration, after 5 unmeasured warm-up leads, --leads leads (200) are routed one by
one through routing.services.lead_route; each call's queries are captured
(CaptureQueriesContext) and timed.
Prints the queries per assignment, the median and p95 time per assignment and the ratio of each
median to the baseline's, measured in the same run.

Database: a temporary SQLite file by default. With DATABASE_URL (or --database-url) set, a
scratch database is created on that server (named bench_routing_<pid>, dropped at the end); the
database the URL names is never written.

Exit status: 0 when every configuration takes the same number of queries per assignment, 1 if the
benchmark could not run, 2 if the query counts differ (or a lead was not assigned).

Run: .venv/bin/python bench/routing.py [--leads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
# A Wednesday, no holiday: everyone is on shift (the fixed clock also makes runs comparable).
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
WARMUP = 5  # leads routed before the measured ones in every configuration


@dataclass
class Result:
    rules: int
    people: int
    setup_s: float = 0.0
    queries: list[int] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    unassigned: int = 0

    @property
    def label(self) -> str:
        return f"{self.rules} rules, {self.people} people"

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95_ms(self) -> float:
        return percentile(self.times_ms, 95)

    @property
    def drift(self) -> float:
        """Median time of the last quarter of the leads over the first quarter's: above 1, an
        assignment gets slower as the assignments before it pile up."""
        quarter = max(1, len(self.times_ms) // 4)
        first = statistics.median(self.times_ms[:quarter])
        return statistics.median(self.times_ms[-quarter:]) / first


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 200 samples is the 190th)."""
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
            "TASKS_BACKEND": "immediate",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def scratch_database_create(scratch: Path) -> tuple[Any, str]:
    """Create and migrate the scratch database; returns (connection, the name to restore)."""
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(scratch / "bench_routing.sqlite3")
    else:
        test["NAME"] = f"bench_routing_{os.getpid()}"  # unique: never clobbers anything
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    return connection, old_name


# --- One configuration --------------------------------------------------------------------------


def rows_clear() -> None:
    from kommo_hub.models import Alert, Contact, Lead
    from routing.models import (
        Area,
        AreaMembership,
        Assignment,
        RoutingRule,
        RuleCondition,
        Salesperson,
        WorkingHours,
    )

    for model in (
        Assignment,
        RuleCondition,
        RoutingRule,
        AreaMembership,
        WorkingHours,
        Area,
        Salesperson,
        Lead,
        Contact,
        Alert,
    ):
        model.objects.all().delete()


def team_build(people: int) -> None:
    """One area (weighted, weights 1, 2, 3, 1, 2, 3…) of people on shift round the clock."""
    from routing.models import Area, AreaMembership, Salesperson, Strategy, WorkingHours

    area = Area.objects.create(name="Vendas", slug="vendas", strategy=Strategy.WEIGHTED)
    persons = Salesperson.objects.bulk_create(
        Salesperson(name=f"Vendedor {i:03d}", kommo_user_id=9_000_000 + i) for i in range(people)
    )
    midnight = clock_time(0)
    WorkingHours.objects.bulk_create(
        WorkingHours(salesperson=p, weekday=day, starts=midnight, ends=midnight)
        for p in persons
        for day in range(7)
    )
    AreaMembership.objects.bulk_create(
        AreaMembership(area=area, salesperson=p, weight=1 + i % 3) for i, p in enumerate(persons)
    )


def rules_build(count: int) -> None:
    """count - 1 rules that fail on their third condition, then the one that matches."""
    from routing.models import (
        Area,
        ConditionField,
        ConditionOperator,
        RoutingRule,
        RuleCondition,
    )

    sales = Area.objects.get(slug="vendas")
    others = Area.objects.bulk_create(Area(name=f"Outra {i}", slug=f"outra-{i}") for i in range(10))
    rules = RoutingRule.objects.bulk_create(
        RoutingRule(
            name=f"Regra {i:04d}",
            position=(i + 1) * 10,
            target_area=sales if i == count - 1 else others[i % len(others)],
        )
        for i in range(count)
    )
    op = ConditionOperator
    failing = [  # the third condition of rule i; one of four kinds, each its own value
        lambda i: (ConditionField.LEAD_FIELD, "interesse", op.EQUALS, f"produto-{i}"),
        lambda i: (ConditionField.UTM_CAMPAIGN, "", op.CONTAINS, f"campanha-{i}"),
        lambda i: (ConditionField.SOURCE, "", op.REGEX, rf"^parceiro-{i}(-[a-z]+)?$"),
        lambda i: (ConditionField.IDENTIFIER, "", op.ONE_OF, f"form-{i}, form-{i}-b, lp-{i}"),
    ]
    conditions = []
    for i, rule in enumerate(rules):
        specs = [
            (ConditionField.UTM_SOURCE, "", op.EQUALS, "google"),
            (ConditionField.TAG, "", op.ONE_OF, "promo, black-friday"),
            (ConditionField.LEAD_FIELD, "interesse", op.EQUALS, "apartamento")
            if i == count - 1
            else failing[i % len(failing)](i),
        ]
        conditions += [
            RuleCondition(rule=rule, field=f, field_name=n, operator=o, value=v)
            for f, n, o, v in specs
        ]
    RuleCondition.objects.bulk_create(conditions)


def leads_build(count: int) -> list[int]:
    """Website leads, each its own person (no returning owner), matching only the last rule."""
    from kommo_hub.models import Lead

    leads = Lead.objects.bulk_create(
        Lead(
            name=f"Cliente {n}",
            phone=f"+55119{n:08d}",
            email=f"cliente{n}@example.com",
            source="website",
            source_identifier="contato",
            utm={"utm_source": "google", "utm_campaign": "imoveis-sp"},
            tags=["promo", "site"],
            fields={"interesse": "apartamento", "cidade": "Campinas"},
        )
        for n in range(count)
    )
    return [lead.pk for lead in leads]


def split_at(ids: list[int], n: int) -> tuple[list[int], list[int]]:
    return ids[:n], ids[n:]


def configuration_run(connection: Any, rules: int, people: int, leads: int) -> Result:
    from django.test.utils import CaptureQueriesContext

    from routing.models import Assignment, AssignmentStatus
    from routing.services import lead_route

    result = Result(rules=rules, people=people)
    began = time.perf_counter()
    rows_clear()
    team_build(people)
    rules_build(rules)
    warmup_ids, lead_ids = split_at(leads_build(WARMUP + leads), WARMUP)
    result.setup_s = time.perf_counter() - began
    for lead_id in warmup_ids:  # first queries, imports, translation catalogs: not measured
        lead_route(lead_id=lead_id, now=NOW)
    for lead_id in lead_ids:
        # CaptureQueriesContext counts positions in a log of at most 9,000 queries: start empty.
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            lead_route(lead_id=lead_id, now=NOW)
            elapsed = time.perf_counter() - started
        result.times_ms.append(elapsed * 1000)
        result.queries.append(len(captured.captured_queries))
    routed = Assignment.objects.filter(is_current=True, lead_id__in=[*warmup_ids, *lead_ids])
    result.unassigned = WARMUP + leads - routed.filter(status=AssignmentStatus.ASSIGNED).count()
    last_rule = f"Regra {rules - 1:04d}"
    result.unassigned += routed.exclude(rule_name=last_rule).count()
    return result


# --- Report -------------------------------------------------------------------------------------


def counts_text(queries: list[int]) -> str:
    counted = Counter(queries)
    if len(counted) == 1:
        return str(queries[0])
    return " / ".join(f"{n}×{times}" for n, times in sorted(counted.items()))


def report(results: list[Result], leads: int, vendor: str) -> bool:
    base = results[0]
    print()
    print(f"{leads} leads per configuration, routed one by one through lead_route ({vendor})")
    print()
    header = (
        f"{'configuration':<26} {'queries/assignment':>18} {'median ms':>10} {'p95 ms':>8}"
        f" {'median ratio':>13} {'drift':>6} {'setup s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.label:<26} {counts_text(r.queries):>18} {r.median_ms:>10.2f} {r.p95_ms:>8.2f}"
            f" {r.median_ms / base.median_ms:>12.2f}x {r.drift:>5.2f}x {r.setup_s:>8.1f}"
        )
    print()
    same = len({q for r in results for q in r.queries}) == 1
    if same:
        print(f"queries per assignment: {base.queries[0]} in every configuration: SAME")
    else:
        print(
            "queries per assignment: DIFFERENT — "
            + "; ".join(f"{r.label}: {counts_text(r.queries)}" for r in results)
        )
    worst = max(results[1:], key=lambda r: r.median_ms, default=base)
    print(
        f"time ratio vs {base.label}: "
        + ", ".join(f"{r.label} {r.median_ms / base.median_ms:.2f}x" for r in results[1:])
        + f" (worst: {worst.label})"
    )
    unassigned = sum(r.unassigned for r in results)
    if unassigned:
        print(f"FAILED: {unassigned} lead(s) not assigned by the last rule")
    return same and not unassigned


def parse_sizes(text: str) -> tuple[int, int]:
    small, _, large = text.partition(",")
    sizes = int(small), int(large)
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Routing benchmark: queries and time per assignment with few vs many rules and"
            " salespeople; the queries must be the same constant."
        ),
        epilog="Exit 0: same query count everywhere; 2: the counts differ; 1: could not run.",
    )
    parser.add_argument(
        "--leads", type=int, default=200, help="leads routed per configuration (200)"
    )
    parser.add_argument(
        "--rules", type=parse_sizes, default=(10, 1000), help="few,many rules (10,1000)"
    )
    parser.add_argument(
        "--people", type=parse_sizes, default=(5, 500), help="few,many salespeople (5,500)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="server for the scratch database (env DATABASE_URL; default: temporary SQLite)",
    )
    args = parser.parse_args(argv)
    if args.leads < 1:
        parser.error("--leads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kommo-hub-bench-routing-") as scratch:
        django_start(args.database_url, Path(scratch))
        from django.db import DatabaseError

        try:
            connection, old_name = scratch_database_create(Path(scratch))
        except DatabaseError as exc:  # no database server, no right to create a database…
            print(f"could not create the scratch database: {exc}", file=sys.stderr)
            return 1
        try:
            (few_rules, many_rules), (few_people, many_people) = args.rules, args.people
            configurations = [
                (few_rules, few_people),
                (many_rules, few_people),
                (few_rules, many_people),
                (many_rules, many_people),
            ]
            results = []
            for rules, people in configurations:
                print(
                    f"routing {args.leads} leads with {rules} rules, {people} people…", flush=True
                )
                results.append(configuration_run(connection, rules, people, args.leads))
            ok = report(results, args.leads, connection.vendor)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
