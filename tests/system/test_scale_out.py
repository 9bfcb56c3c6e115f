"""The hub on two "machines": two sets of web and task workers (and a scheduler each), with
separate working directories and ports, sharing one private Postgres and Redis. 200 leads posted
alternately to both machines' webhooks: each event is processed once, each n8n action is
delivered once, each Kommo lead is created once, and Kommo never sees more than 7 requests in
any second from the two machines together (the limiter's window lives in the shared Redis)."""

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.system.scenario import FORMS_PATH, SALESPEOPLE, SIZES, Db, form_body, seed, wait_for
from tests.system.stack import PG_BIN, Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not (PG_BIN / "initdb").exists() or shutil.which("redis-server") is None,
        reason=f"needs PostgreSQL's initdb in {PG_BIN} and redis-server to start private servers",
    ),
]

LEADS = 200


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack.create()
    try:
        yield stack
    except BaseException:
        stack.keep = True
        raise
    finally:
        stack.close()


def test_two_machines_share_the_work_without_doing_anything_twice(stack: Stack) -> None:
    stack.start()
    seed(stack, SIZES["ci"])
    machines = []
    for name in ("A", "B"):
        machine = stack.add_machine(name)
        machine.start_web()
        machine.start_worker()
        machine.start_worker()
        machine.start_scheduler()
        machines.append(machine)
    for machine in machines:
        machine.wait_web()
    assert len(SALESPEOPLE) == 4

    def send(index: int) -> tuple[str, int, dict[str, int]]:
        machine = machines[index % 2]
        body, _phone = form_body(index)
        response = httpx.post(
            f"{machine.base}{FORMS_PATH}",
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": f"lead-{index}"},
            timeout=30,
        )
        return machine.name, response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(LEADS)))

    assert {(name, code) for name, code, _body in answers} == {("A", 200), ("B", 200)}
    assert all(body == {"accepted": 1, "duplicates": 0} for _n, _c, body in answers)
    db = Db(stack)
    try:
        # Each lead: a contact search and a lead creation in Kommo (≥ 57 s at 7 per second),
        # then its proactive message to n8n.
        done = wait_for(
            lambda: (
                len(stack.n8n.delivered) >= LEADS
                and db.value("SELECT count(*) FROM kommo_hub_outboundaction WHERE status <> 'done'")
                == 0
            ),
            timeout=300,
            interval=1,
        )
        assert done, stack.logs()
        time.sleep(2)  # anything delivered twice would show up now
        events = db.rows(
            "SELECT event_type, status, attempts, count(*) FROM kommo_hub_inboundevent "
            "GROUP BY 1, 2, 3 ORDER BY 1"
        )
        by_machine = db.rows(
            "SELECT headers->>'Host', count(*) FROM kommo_hub_inboundrequest "
            "WHERE source = 'forms' GROUP BY 1 ORDER BY 1"
        )
        actions = db.rows(
            "SELECT target, action, status, count(*) FROM kommo_hub_outboundaction "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2"
        )
    finally:
        db.close()
    kommo = stack.kommo.figures()
    span = max(kommo.times) - min(kommo.times)
    print(
        f"scale-out: {LEADS} leads, 2 machines: {len(kommo.times)} Kommo calls in {span:.1f} s, "
        f"at most {kommo.max_per_window()} in any 1 s; {len(stack.n8n.delivered)} n8n actions"
    )

    # Each event claimed and processed once: the leads, and n8n's callbacks of their messages.
    assert events == [
        ("forms.lead", "processed", 1, LEADS),
        ("n8n.callback", "processed", 1, LEADS),
    ]
    assert [count for _host, count in by_machine] == [LEADS // 2, LEADS // 2], by_machine
    assert actions == [
        ("kommo", "lead_create", "done", LEADS),
        ("n8n", "proactive_message", "done", LEADS),
    ]
    assert stack.n8n.by_action() == {"proactive_message": LEADS}
    assert set(stack.n8n.attempts.values()) == {1}  # no action sent twice
    assert sorted(kommo.created_by_request.values()) == [1] * LEADS
    assert kommo.violations == []
    assert kommo.max_per_window() <= 7, json.dumps(sorted(kommo.times))
