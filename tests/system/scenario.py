"""A production day compressed into minutes, against real hub processes, with faults.

The stack (tests/system/stack.py): a private Postgres and Redis, two "machines" (web + 2 task
workers + a scheduler each, own working directory and port), a fake Kommo that enforces 7
requests per second, a fake n8n that executes each idempotency key once and calls back, and
Supabase's agenda behind a PostgREST stand-in (bookings are written there first).

The load (deterministic, seeded): new leads from the website form, RD Station and Kommo, ~10%
delivered twice (a sender's retry); WhatsApp conversations with bursts of 2–4 messages, some taken
over with #pausar (customer messages during the pause must get no AI reply) and handed back with
#voltar; meeting requests ("pode ser amanhã às 15h?") that must become `schedule` actions;
bookings through the scheduling API, including several clients racing for one slot, and
appointments close enough that their reminders fire during the run. Senders alternate between
the machines. Faults on a timeline: a task worker SIGKILLed (and replaced), n8n down then slow,
Kommo answering 429s, then 502s, then creating leads and notes but losing the answer (504), Postgres
restarted, a scheduler SIGKILLed and two started.

`run(size)` returns a Report: the figures and each pass criterion. bench/system.py prints it;
tests/system/test_production_day.py asserts it.
"""

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from tests.conftest import SECRETS
from tests.system.stack import Machine, Stack

KOMMO_PATH = f"/webhooks/kommo/{SECRETS['KOMMO_WEBHOOK_SECRET']}/"
RD_PATH = f"/webhooks/rdstation/{SECRETS['RDSTATION_WEBHOOK_SECRET']}/"
FORMS_PATH = f"/webhooks/forms/{SECRETS['FORMS_WEBHOOK_SECRET']}/"
FORM = "application/x-www-form-urlencoded"
ACCOUNT = [
    ("account[subdomain]", "acmevendas"),
    ("account[id]", "31234567"),
    ("account[_links][self]", "https://acmevendas.amocrm.com"),
]
SALESPEOPLE = [  # name, Kommo user id, phone
    ("Ana Lima", 9100001, "+5511990000001"),
    ("Bruno Costa", 9100002, "+5511990000002"),
    ("Carla Dias", 9100003, "+5511990000003"),
    ("Diego Reis", 9100004, "+5511990000004"),
]
MEETING_TEXTS = ["pode ser amanhã às 15h?", "quero agendar uma visita amanhã às 10h"]
CHAT_TEXTS = [
    "Oi, tudo bem?",
    "Quero saber o preço do plano anual",
    "Vocês atendem em Campinas?",
    "tem desconto à vista?",
    "e o prazo de entrega?",
    "obrigado!",
    "Qual o horário de atendimento?",
    "Posso pagar no boleto?",
]
SEND_RETRIES = 30  # a sender (Kommo, RD Station) retrying a retryable answer


@dataclass(frozen=True)
class Size:
    name: str
    form_leads: int
    rd_leads: int
    kommo_leads: int  # unowned Kommo leads (routed by the hub)
    conversations: int  # Kommo leads owned by a salesperson, each with a WhatsApp chat
    bursts: int  # customer bursts per conversation (plus the pause's)
    pauses: int  # conversations taken over with #pausar and handed back with #voltar
    meetings: int  # conversations whose first burst asks for a meeting
    bookings: int  # appointments booked through the API (each gets reminders)
    contested: int  # clients racing for one slot
    load_seconds: float  # how long the leads keep coming
    reminder_offsets: str
    min_notice_minutes: int
    fault_at: dict[str, float]  # fault → seconds after the start of the load


SIZES = {
    "ci": Size(
        name="ci",
        form_leads=24,
        rd_leads=16,
        kommo_leads=8,
        conversations=10,
        bursts=2,
        pauses=3,
        meetings=3,
        bookings=6,
        contested=4,
        load_seconds=95,
        reminder_offsets="1",
        min_notice_minutes=1,
        fault_at={
            "worker_kill": 12,
            "n8n_down": 22,
            "kommo_429": 36,
            "kommo_5xx": 46,
            "n8n_slow": 54,
            "postgres_restart": 66,
            "scheduler_kill": 82,
        },
    ),
    "full": Size(
        name="full",
        form_leads=120,
        rd_leads=80,
        kommo_leads=40,
        conversations=30,
        bursts=4,
        pauses=8,
        meetings=8,
        bookings=16,
        contested=6,
        load_seconds=300,
        reminder_offsets="2,1",
        min_notice_minutes=3,
        fault_at={
            "worker_kill": 30,
            "n8n_down": 60,
            "kommo_429": 100,
            "kommo_5xx": 130,
            "n8n_slow": 160,
            "postgres_restart": 200,
            "scheduler_kill": 240,
        },
    ),
}
# Seconds around the Postgres restart with no conversation bursts: a burst split by a restart
# would (rightly) get two replies, which would make the expected count depend on timing.
QUIET_BEFORE, QUIET_AFTER = 4.0, 12.0


# --- recording what senders saw ----------------------------------------------------------------


@dataclass
class Sent:
    kind: str
    machine: str
    at: float  # wall clock when the (first) attempt started
    answered_at: float
    status: int | None  # the final answer
    seconds: list[float]  # each attempt's answer time
    statuses: list[int | None]  # each attempt's status (None: no answer)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorder:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    db_down: list[tuple[float, float]] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    start: float = 0.0

    def add(self, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)

    def fault(self, text: str) -> None:
        with self.lock:
            self.faults.append((time.time() - self.start, text))


class Sender:
    """Posts like a webhook sender: a retryable answer (503, 429, no answer) is retried."""

    def __init__(self, recorder: Recorder, machines: list[Machine]) -> None:
        self.recorder = recorder
        self.machines = machines
        self.turn = 0
        self.lock = threading.Lock()

    def machine(self) -> Machine:
        with self.lock:
            self.turn += 1
            return self.machines[self.turn % len(self.machines)]

    def post(
        self,
        kind: str,
        path: str,
        *,
        content: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        machine: Machine | None = None,
    ) -> Sent:
        machine = machine or self.machine()
        started = time.time()
        seconds: list[float] = []
        statuses: list[int | None] = []
        body: dict[str, Any] = {}
        with httpx.Client(timeout=30) as client:
            for attempt in range(SEND_RETRIES):
                t0 = time.perf_counter()
                status: int | None
                try:
                    response = client.post(
                        f"{machine.base}{path}",
                        content=content,
                        headers={"Content-Type": content_type, **(headers or {})},
                    )
                    status = response.status_code
                    if status == 200:
                        body = response.json()
                except httpx.HTTPError:
                    status = None
                seconds.append(time.perf_counter() - t0)
                statuses.append(status)
                if status is not None and status < 500 and status != 429:
                    break
                time.sleep(min(0.5 * (attempt + 1), 3))
        sent = Sent(kind, machine.name, started, time.time(), status, seconds, statuses, body)
        self.recorder.add(sent)
        return sent


# --- bodies as the senders write them ----------------------------------------------------------


def kommo_lead_add(*, lead_id: int, name: str, responsible: int, stamp: int) -> bytes:
    fields = [
        ("id", str(lead_id)),
        ("name", name),
        ("status_id", "61234501"),
        ("price", "0"),
        ("responsible_user_id", str(responsible)),
        ("last_modified", str(stamp)),
        ("date_create", str(stamp)),
        ("pipeline_id", "7654321"),
        ("account_id", "31234567"),
        ("created_at", str(stamp)),
        ("updated_at", str(stamp)),
    ]
    pairs = [(f"leads[add][0][{k}]", v) for k, v in fields] + ACCOUNT
    return urlencode(pairs).encode()


def kommo_message(
    *, message_id: str, chat: "Chat", text: str, outgoing: bool, author: str, stamp: int
) -> bytes:
    fields = [
        ("id", message_id),
        ("chat_id", chat.chat_id),
        ("talk_id", str(chat.talk_id)),
        ("contact_id", str(chat.contact_id)),
        ("text", text),
        ("created_at", str(stamp)),
        ("message_type", "text"),
        ("element_type", "2"),
        ("entity_type", "lead"),
        ("element_id", str(chat.kommo_lead_id)),
        ("entity_id", str(chat.kommo_lead_id)),
        ("type", "outgoing" if outgoing else "incoming"),
        ("author[id]", str(uuid.uuid5(uuid.NAMESPACE_DNS, author))),
        ("author[type]", "user" if outgoing else "external"),
        ("author[name]", author),
        ("origin", "waba"),
    ]
    pairs = [(f"message[add][0][{k}]", v) for k, v in fields] + ACCOUNT
    return urlencode(pairs).encode()


def phone_of(index: int) -> tuple[str, str]:
    """(as typed in a form, E.164)."""
    a, b = 7000 + index // 1000, 1000 + index % 1000
    return f"(11) 9{a:04d}-{b:04d}", f"+55119{a:04d}{b:04d}"


def form_body(index: int) -> tuple[bytes, str]:
    typed, e164 = phone_of(index)
    body = {
        "nome": f"Cliente Site {index}",
        "telefone": typed,
        "email": f"site{index}@example.com",
        "mensagem": "Quero um orçamento",
        "utm_source": "google",
        "utm_campaign": "dia-de-producao",
    }
    return json.dumps(body).encode(), e164


def rd_body(index: int, rng: random.Random) -> tuple[bytes, str]:
    typed, e164 = phone_of(10_000 + index)
    moment = datetime.now(UTC) - timedelta(seconds=rng.randint(1, 60))
    body = {
        "event_type": "WEBHOOK.CONVERTED",
        "entity_type": "CONTACT",
        "event_identifier": "form-contato-whatsapp",
        "timestamp": moment.isoformat(),
        "event_timestamp": moment.isoformat(),
        "contact": {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
            "email": f"rd{index}@example.com",
            "name": f"Contato RD {index}",
            "mobile_phone": typed,
            "tags": ["dia-de-producao"],
        },
    }
    return json.dumps(body).encode(), e164


# --- the scenario's people and chats -----------------------------------------------------------


@dataclass
class Burst:
    message_ids: list[str]
    paused: bool
    meeting: bool
    last_sent_at: float = 0.0


@dataclass
class Chat:
    index: int
    kommo_lead_id: int
    chat_id: str
    talk_id: int
    contact_id: int
    owner: int  # Kommo user id
    customer: str
    bursts: list[Burst] = field(default_factory=list)
    paused_window: tuple[float, float] | None = None  # pause processed → resume processed


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# --- the database, read directly -------------------------------------------------------------


class Db:
    """Reads from the stack's Postgres (reconnecting across its restart)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.conn: psycopg.Connection[Any] | None = None
        self.lock = threading.Lock()

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            for _attempt in range(60):
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = self.stack.postgres.connect()
                    return self.conn.execute(sql, params).fetchall()
                except psycopg.OperationalError:
                    if self.conn is not None:
                        self.conn.close()
                    self.conn = None
                    time.sleep(0.5)
            raise RuntimeError(f"database unreachable for {sql!r}")

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


# --- seeding ------------------------------------------------------------------------------------

SEED = """
from datetime import time
from routing.models import Area, AreaMembership, Salesperson, Strategy, WorkingHours
area, _ = Area.objects.update_or_create(slug="vendas", defaults=dict(
    name="Vendas", is_default=True, strategy=Strategy.ROUND_ROBIN, reply_sla_minutes=None,
    slot_minutes=1, min_notice_minutes={notice}, booking_horizon_days=14,
    ai_instructions="Seja cordial.", first_message_hint="Agradeça o contato."))
for name, kommo_id, phone in {people!r}:
    person, created = Salesperson.objects.update_or_create(
        kommo_user_id=kommo_id, defaults=dict(name=name, phone=phone, active=True))
    if created:
        WorkingHours.objects.bulk_create(
            WorkingHours(salesperson=person, weekday=d, starts=time(0), ends=time(0))
            for d in range(7))
    AreaMembership.objects.get_or_create(area=area, salesperson=person)
print("seeded")
"""


def seed(stack: Stack, size: Size) -> str:
    """Area and salespeople (always working, with phones and Kommo ids); returns an API key."""
    stack.manage("shell", "-c", SEED.format(notice=size.min_notice_minutes, people=SALESPEOPLE))
    return stack.manage("create_api_key", "system-test-n8n", "--scope", "scheduling").strip()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Criterion:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    size: str
    figures: list[tuple[str, str, str]]  # name, value, expected
    criteria: list[Criterion]
    durations: dict[str, float]
    faults: list[tuple[float, str]]
    logs_dir: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    def text(self) -> str:
        width = max(len(name) for name, _v, _e in self.figures)
        lines = [f"Production day ({self.size}) — figures", ""]
        lines += [f"  {n:<{width}}  {v:>14}  {e}" for n, v, e in self.figures]
        lines += ["", "Faults (seconds after the load started)"]
        lines += [f"  {at:6.1f}s  {text}" for at, text in self.faults]
        lines += ["", "Durations"]
        lines += [f"  {name:<22} {seconds:7.1f}s" for name, seconds in self.durations.items()]
        lines += ["", "Pass criteria"]
        lines += [
            f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in self.criteria
        ]
        lines += ["", "RESULT: " + ("PASS" if self.passed else "FAIL")]
        if self.logs_dir:
            lines.append(f"(process logs kept in {self.logs_dir})")
        return "\n".join(lines)


class Day:
    def __init__(self, stack: Stack, size: Size, *, seed_value: int = 20261125) -> None:
        self.stack = stack
        self.size = size
        self.rng = random.Random(seed_value)
        self.recorder = Recorder()
        self.db = Db(stack)
        self.machines: list[Machine] = []
        self.sender: Sender
        self.api_key = ""
        self.lead_sent_at: dict[str, float] = {}  # E.164 phone → when its first webhook went out
        self.expected_proactive = 0
        self.chats: list[Chat] = []
        self.booking_results: list[tuple[str, int | None]] = []
        self.appointments_expected = 0
        self.duplicate_sends = 0
        self.errors: list[str] = []
        self.quiet: tuple[float, float] = (0.0, 0.0)

    # -- setup

    def boot(self) -> None:
        t0 = time.monotonic()
        self.stack.start(REMINDER_OFFSETS_MINUTES=self.size.reminder_offsets)
        self.api_key = seed(self.stack, self.size)
        for name in ("A", "B"):
            machine = self.stack.add_machine(name)
            machine.start_web()
            machine.start_worker()
            machine.start_worker()
            machine.start_scheduler()
            self.machines.append(machine)
        for machine in self.machines:
            machine.wait_web()
        self.sender = Sender(self.recorder, self.machines)
        self.boot_seconds = time.monotonic() - t0

    # -- load threads

    def at(self, seconds: float) -> None:
        """Sleep until `seconds` after the load started."""
        delay = self.recorder.start + seconds - time.time()
        if delay > 0:
            time.sleep(delay)

    def now(self) -> float:
        return time.time() - self.recorder.start

    def in_quiet(self, start: float, length: float) -> bool:
        quiet_start, quiet_end = self.quiet
        return start < quiet_end and start + length > quiet_start

    def leads_load(self) -> None:
        """Forms, RD Station and unowned Kommo leads spread over the load, ~10% sent twice."""
        size = self.size
        kinds = ["form"] * size.form_leads + ["rd"] * size.rd_leads + ["kommo"] * size.kommo_leads
        self.rng.shuffle(kinds)
        span = size.load_seconds - 10
        times = sorted(self.rng.uniform(1, span) for _ in kinds)
        threads = []
        counters: Counter[str] = Counter()
        for moment, kind in zip(times, kinds, strict=True):
            counters[kind] += 1
            index = counters[kind]
            duplicate = self.rng.random() < 0.1
            thread = threading.Thread(
                target=self._one_lead, args=(moment, kind, index, duplicate), daemon=True
            )
            threads.append(thread)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _one_lead(self, moment: float, kind: str, index: int, duplicate: bool) -> None:
        self.at(moment)
        headers: dict[str, str] = {}
        if kind == "form":
            body, phone = form_body(index)
            if index % 2:
                headers["Idempotency-Key"] = f"site-{index}"
            path, ctype = FORMS_PATH, "application/json"
            self.lead_sent_at[phone] = time.time()
            self.expected_proactive += 1
        elif kind == "rd":
            with self.sender.lock:
                body, phone = rd_body(index, self.rng)
            path, ctype = RD_PATH, "application/json"
            self.lead_sent_at[phone] = time.time()
            self.expected_proactive += 1
        else:
            stamp = int(time.time())
            body = kommo_lead_add(
                lead_id=30_000_000 + index, name=f"Lead Kommo {index}", responsible=0, stamp=stamp
            )
            path, ctype = KOMMO_PATH, FORM
        self.sender.post(kind, path, content=body, content_type=ctype, headers=headers)
        if duplicate:
            time.sleep(self.rng.uniform(0.3, 4))
            self.duplicate_sends += 1
            self.sender.post(
                f"{kind} (again)", path, content=body, content_type=ctype, headers=headers
            )

    def conversations_load(self) -> None:
        size = self.size
        self.chats = [
            Chat(
                index=i,
                kommo_lead_id=20_000_000 + i,
                chat_id=str(uuid.UUID(int=self.rng.getrandbits(128))),
                talk_id=5000 + i,
                contact_id=40_000_000 + i,
                owner=SALESPEOPLE[i % len(SALESPEOPLE)][1],
                customer=f"Cliente Chat {i}",
            )
            for i in range(size.conversations)
        ]
        # The leads exist in Kommo (and now in the hub) before anyone writes.
        for chat in self.chats:
            body = kommo_lead_add(
                lead_id=chat.kommo_lead_id,
                name=f"Chat {chat.index}",
                responsible=chat.owner,
                stamp=int(time.time()),
            )
            self.sender.post("kommo owned lead", KOMMO_PATH, content=body, content_type=FORM)
        threads = [
            threading.Thread(target=self._chat, args=(chat,), daemon=True) for chat in self.chats
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send_burst(self, chat: Chat, *, texts: list[str], paused: bool, meeting: bool) -> Burst:
        burst = Burst(message_ids=[], paused=paused, meeting=meeting)
        for text in texts:
            message_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            burst.message_ids.append(message_id)
            body = kommo_message(
                message_id=message_id,
                chat=chat,
                text=text,
                outgoing=False,
                author=chat.customer,
                stamp=int(time.time()),
            )
            self.sender.post("kommo message", KOMMO_PATH, content=body, content_type=FORM)
            if self.rng.random() < 0.1:  # Kommo retrying a hook it thinks failed
                self.duplicate_sends += 1
                self.sender.post(
                    "kommo message (retry)", KOMMO_PATH, content=body, content_type=FORM
                )
            burst.last_sent_at = time.time()
            time.sleep(self.rng.uniform(0.1, 0.4))
        chat.bursts.append(burst)
        return burst

    def _burst_texts(self, meeting: bool) -> list[str]:
        texts = self.rng.sample(CHAT_TEXTS, self.rng.randint(2, 4))
        if meeting:
            texts[-1] = self.rng.choice(MEETING_TEXTS)
        return texts

    def _wait_slot(self, length: float) -> None:
        """Wait until a burst of `length` seconds would not overlap the Postgres restart."""
        while self.in_quiet(self.now(), length):
            time.sleep(0.5)

    def _delivered_for(self, chat: Chat, burst: Burst) -> bool:
        last = burst.message_ids[-1]
        for delivery in list(self.stack.n8n.delivered.values()):
            message = delivery.envelope.get("message") or {}
            if any(m.get("id") == last for m in message.get("burst") or []):
                return True
        return False

    def _command(self, chat: Chat, text: str) -> float | None:
        """A salesperson's message with a command; returns when the hub had processed it."""
        message_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        body = kommo_message(
            message_id=message_id,
            chat=chat,
            text=text,
            outgoing=True,
            author=SALESPEOPLE[chat.index % len(SALESPEOPLE)][0],
            stamp=int(time.time()),
        )
        self.sender.post("kommo command", KOMMO_PATH, content=body, content_type=FORM)

        def processed() -> Any:
            return self.db.value(
                "SELECT extract(epoch FROM processed_at) FROM kommo_hub_inboundevent "
                "WHERE external_id = %s AND status = 'processed'",
                message_id,
            )

        done = wait_for(processed, timeout=90, interval=0.3)
        if done is None:
            self.errors.append(f"chat {chat.index}: {text!r} was not processed in 90 s")
            return None
        return float(done)

    def _chat(self, chat: Chat) -> None:
        size = self.size
        pause = chat.index < size.pauses
        meeting = size.pauses <= chat.index < size.pauses + size.meetings
        start = 3 + chat.index * (size.load_seconds * 0.6 / max(1, size.conversations))
        self.at(start)
        for number in range(size.bursts):
            self._wait_slot(2.5)
            burst = self._send_burst(
                chat,
                texts=self._burst_texts(meeting and number == 0),
                paused=False,
                meeting=meeting and number == 0,
            )
            # The customer reads the answer before writing again (a new burst).
            wait_for(lambda b=burst: self._delivered_for(chat, b), timeout=90, interval=0.3)
            time.sleep(self.rng.uniform(1, 4))
            if pause and number == 0:
                self._wait_slot(8)
                paused_at = self._command(chat, "Oi, aqui é a vendedora, vou te atender #pausar")
                for _ in range(self.rng.randint(1, 2)):
                    self._send_burst(chat, texts=self._burst_texts(False), paused=True,
                                     meeting=False)  # fmt: skip
                    time.sleep(self.rng.uniform(2, 4))
                time.sleep(2)  # nothing the hub could still send for them
                resumed_at = self._command(chat, "#voltar")
                if paused_at is not None and resumed_at is not None:
                    chat.paused_window = (paused_at, resumed_at)

    def bookings_load(self) -> None:
        """Appointments for some chat leads (reminders fire during the run), one slot raced."""
        size = self.size
        self.at(8)
        lead_ids: dict[int, int] = {}

        def known() -> bool:
            rows = self.db.rows(
                "SELECT l.kommo_lead_id, l.id FROM kommo_hub_lead l JOIN routing_assignment a "
                "ON a.lead_id = l.id AND a.is_current WHERE l.kommo_lead_id >= 20000000 "
                "AND l.kommo_lead_id < 30000000"
            )
            lead_ids.update({int(k): int(v) for k, v in rows})
            return len(lead_ids) >= size.conversations

        if not wait_for(known, timeout=90, interval=0.5):
            self.errors.append(f"only {len(lead_ids)} chat leads were routed before booking")
        # The first slot on the minute grid after the minimum notice; four salespeople, so four
        # bookings share each minute. The race is for a later minute of a salesperson (the third)
        # who is free then, so exactly one racer can win it.
        now = datetime.now(UTC)
        base = (now + timedelta(minutes=size.min_notice_minutes + 1)).replace(
            second=0, microsecond=0
        )
        chats = [c for c in self.chats if c.kommo_lead_id in lead_ids]
        headers = {"Authorization": f"Api-Key {self.api_key}"}

        def book(lead: int, start: datetime, key: str) -> int | None:
            machine = self.sender.machine()
            for _attempt in range(SEND_RETRIES):
                try:
                    response = httpx.post(
                        f"{machine.base}/api/scheduling/appointments/",
                        json={"lead": lead, "start": start.isoformat(), "idempotency_key": key},
                        headers=headers,
                        timeout=30,
                    )
                except httpx.HTTPError:
                    time.sleep(1)
                    continue
                if response.status_code < 500:
                    return response.status_code
                time.sleep(1)
            return None

        people = len(SALESPEOPLE)
        plain = chats[: size.bookings]
        for number, chat in enumerate(plain):
            start = base + timedelta(minutes=number // people)
            code = book(lead_ids[chat.kommo_lead_id], start, f"book:{chat.index}")
            self.booking_results.append(("booking", code))
            if code == 201:
                self.appointments_expected += 1
            if number == 0:  # n8n retrying the same booking
                again = book(lead_ids[chat.kommo_lead_id], start, f"book:{chat.index}")
                self.booking_results.append(("same booking again", again))
        owner = SALESPEOPLE[2][1]
        taken = {number // people for number, c in enumerate(plain) if c.owner == owner}
        minute = max(taken, default=-1) + 1
        start = base + timedelta(minutes=minute)
        owned = [c for c in chats if c.owner == owner] or chats[:1]
        racers = [owned[n % len(owned)] for n in range(size.contested)]
        barrier = threading.Barrier(len(racers))
        codes: list[int | None] = []

        def racer(number: int, chat: Chat) -> None:
            barrier.wait(timeout=30)
            codes.append(book(lead_ids[chat.kommo_lead_id], start, f"race:{number}"))

        threads = [
            threading.Thread(target=racer, args=(n, c), daemon=True) for n, c in enumerate(racers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.booking_results += [("contested slot", code) for code in codes]
        self.appointments_expected += sum(1 for code in codes if code == 201)

    def faults_load(self) -> None:
        at = self.size.fault_at
        events = sorted(at.items(), key=lambda item: item[1])
        for name, moment in events:
            self.at(moment)
            getattr(self, f"fault_{name}")()

    def fault_worker_kill(self) -> None:
        machine = self.machines[0]
        victim = machine.live_workers()[0]
        victim.kill_group()
        self.recorder.fault(f"SIGKILL task worker {machine.name} (pid {victim.pid})")
        time.sleep(2)
        machine.start_worker()
        self.recorder.fault(f"replacement task worker started on {machine.name}")

    def fault_n8n_down(self) -> None:
        self.stack.n8n.mode = "down"
        self.recorder.fault("n8n down (503)")
        time.sleep(10)
        self.stack.n8n.mode = "ok"
        self.recorder.fault("n8n back")

    def fault_n8n_slow(self) -> None:
        self.stack.n8n.mode = "slow"
        self.recorder.fault("n8n slow (answers after 3 s; the hub gives up at 2 s)")
        time.sleep(10)
        self.stack.n8n.mode = "ok"
        self.recorder.fault("n8n fast again")

    def fault_kommo_429(self) -> None:
        self.stack.kommo.mode = "429"
        self.recorder.fault("Kommo answers 429")
        time.sleep(4)
        self.stack.kommo.mode = "ok"
        self.recorder.fault("Kommo answers normally")

    def fault_kommo_5xx(self) -> None:
        self.stack.kommo.mode = "5xx"
        self.recorder.fault("Kommo answers 502")
        time.sleep(2)
        self.stack.kommo.mode = "lost"
        self.recorder.fault("Kommo creates leads and notes but answers 504 (the answer is lost)")
        time.sleep(3)
        self.stack.kommo.mode = "ok"
        self.recorder.fault("Kommo answers normally")

    def fault_postgres_restart(self) -> None:
        down = time.time()
        self.recorder.fault("Postgres stopped (pg_ctl stop -m fast), started 3 s later")
        self.stack.postgres.restart(down_seconds=3)
        up = time.time()
        self.recorder.db_down.append((down, up))
        self.recorder.fault(f"Postgres up again after {up - down:.1f}s")

    def fault_scheduler_kill(self) -> None:
        machine = self.machines[0]
        for scheduler in machine.live_schedulers():
            scheduler.kill_group()
            self.recorder.fault(f"SIGKILL scheduler {machine.name} (pid {scheduler.pid})")
        machine.start_scheduler()
        machine.start_scheduler()
        self.recorder.fault(f"two schedulers started on {machine.name}")

    # -- run

    def run(self) -> Report:
        self.boot()
        self.recorder.start = time.time()
        restart = self.size.fault_at["postgres_restart"]
        self.quiet = (restart - QUIET_BEFORE, restart + QUIET_AFTER)
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=self._guard(target), daemon=True)
            for target in (
                self.leads_load,
                self.conversations_load,
                self.bookings_load,
                self.faults_load,
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_seconds = time.monotonic() - t0
        t1 = time.monotonic()
        drained = self.drain()
        drain_seconds = time.monotonic() - t1
        report = self.report(drained)
        report.durations = {
            "boot (db, migrate, seed)": self.boot_seconds,
            "load with faults": load_seconds,
            "drain": drain_seconds,
        }
        return report

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # noqa: BLE001 - reported as a failed criterion
                self.errors.append(f"{target.__name__}: {type(exc).__name__}: {exc}")

        return run

    def backlog(self) -> dict[str, int]:
        events = self.db.value(
            "SELECT count(*) FROM kommo_hub_inboundevent "
            "WHERE status NOT IN ('processed', 'ignored')"
        )
        actions = self.db.value(
            "SELECT count(*) FROM kommo_hub_outboundaction WHERE status NOT IN ('done', 'skipped')"
        )
        reminders = self.db.value(
            "SELECT count(*) FROM scheduling_reminder WHERE status = 'scheduled'"
        )
        return {"events": int(events), "actions": int(actions), "reminders": int(reminders)}

    def supabase_agenda(self) -> dict[str, Any]:
        """What Supabase's own table holds, against the hub's mirror of it."""
        with psycopg.connect(
            self.stack.postgres.database_url("supabase"), autocommit=True, connect_timeout=5
        ) as conn:
            rows = conn.execute(
                "WITH active AS (SELECT * FROM agendamentos "
                "  WHERE status IN ('booked', 'confirmed') AND deleted_at IS NULL) "
                "SELECT (SELECT count(*) FROM active), "
                "  (SELECT count(*) FROM active a JOIN active b "
                "   ON a.vendedor_id = b.vendedor_id AND a.id < b.id "
                "   AND a.inicio < b.fim AND b.inicio < a.fim)"
            ).fetchone()
        assert rows is not None
        hub = self.db.rows(
            "SELECT count(*), count(*) FILTER (WHERE supabase_id IS NULL) "
            "FROM scheduling_appointment WHERE status IN ('booked', 'confirmed')"
        )[0]
        return {
            "active": int(rows[0]),
            "overlapping": int(rows[1]),
            "hub_active": int(hub[0]),
            "hub_without_supabase": int(hub[1]),
            "statuses": self.stack.supabase.statuses if self.stack.supabase else Counter(),
        }

    def drain(self, timeout: float = 420) -> bool:
        """The backlog (events, actions, reminders still to send) reaches zero."""
        return bool(wait_for(lambda: not any(self.backlog().values()), timeout=timeout, interval=1))

    # -- figures and criteria

    def report(self, drained: bool) -> Report:
        n8n, kommo, rec = self.stack.n8n, self.stack.kommo.figures(), self.recorder
        sent = list(rec.sent)
        webhooks = [s for s in sent]
        answers = [sec for s in webhooks for sec in s.seconds]
        accepted = sum(int(s.body.get("accepted", 0)) for s in webhooks)
        hub_duplicates = sum(int(s.body.get("duplicates", 0)) for s in webhooks)
        grace = 3.0

        def db_down(moment: float) -> bool:
            return any(a - 0.5 <= moment <= b + grace for a, b in rec.db_down)

        bad_5xx, retryable_during_restart, sender_retries = [], 0, 0
        for s in webhooks:
            moment = s.at
            for status, seconds in zip(s.statuses, s.seconds, strict=True):
                if status is None or status >= 500:
                    if db_down(moment) and status in (503, None):
                        retryable_during_restart += 1
                    else:
                        bad_5xx.append(
                            f"{s.kind}@{s.machine} {status} at {moment - rec.start:.1f}s"
                        )
                moment += seconds
            sender_retries += len(s.statuses) - 1
        lost = [s for s in webhooks if s.status != 200]

        by_action = n8n.by_action()
        expected_replies = sum(
            1 for c in self.chats for b in c.bursts if not b.paused and not b.meeting
        )
        expected_schedule = sum(1 for c in self.chats for b in c.bursts if b.meeting)
        offsets = len(self.size.reminder_offsets.split(","))
        expected = {
            "proactive_message": self.expected_proactive,
            "reply": expected_replies,
            "schedule": expected_schedule,
            "reminder": self.appointments_expected * offsets,
        }
        # Latencies: webhook sent → action at n8n.
        latencies: list[float] = []
        sent_by_message = {}
        for chat in self.chats:
            for burst in chat.bursts:
                for message_id in burst.message_ids:
                    sent_by_message[message_id] = burst.last_sent_at
        answered: Counter[str] = Counter()
        paused_ids = {m for c in self.chats for b in c.bursts if b.paused for m in b.message_ids}
        for delivery in n8n.delivered.values():
            envelope = delivery.envelope
            if delivery.action == "proactive_message":
                phone = (envelope.get("lead") or {}).get("phone") or ""
                if phone in self.lead_sent_at:
                    latencies.append(delivery.at - self.lead_sent_at[phone])
            message = envelope.get("message") or {}
            ids = [m.get("id") for m in message.get("burst") or []]
            for message_id in ids:
                answered[message_id] += 1
            if ids and ids[-1] in sent_by_message:
                latencies.append(delivery.at - sent_by_message[ids[-1]])
        # No AI reply after a pause: nothing for a paused chat between pause and resume.
        after_pause = []
        for chat in self.chats:
            if chat.paused_window is None:
                continue
            paused, resumed = chat.paused_window
            for delivery in n8n.delivered.values():
                envelope = delivery.envelope
                if (envelope.get("conversation") or {}).get("chat_id") != chat.chat_id:
                    continue
                if delivery.action in ("reply", "schedule") and paused < delivery.at < resumed:
                    after_pause.append(f"chat {chat.index}: {delivery.key}")
        answered_paused = sorted(m for m in paused_ids if answered[m])
        unanswered = sorted(m for m in sent_by_message if m not in paused_ids and answered[m] != 1)
        # Reminders: one per appointment and offset.
        reminder_pairs: Counter[tuple[Any, Any]] = Counter(
            (
                (d.envelope.get("appointment") or {}).get("id"),
                (d.envelope.get("reminder") or {}).get("offset_minutes"),
            )
            for d in n8n.delivered.values()
            if d.action == "reminder"
        )
        twice = [pair for pair, count in reminder_pairs.items() if count > 1]
        overlapping = self.db.value(
            "SELECT count(*) FROM scheduling_appointment a JOIN scheduling_appointment b "
            "ON a.salesperson_id = b.salesperson_id AND a.id < b.id "
            "AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at "
            "WHERE a.status IN ('booked', 'confirmed') AND b.status IN ('booked', 'confirmed')"
        )
        contested = Counter(code for kind, code in self.booking_results if kind == "contested slot")
        agenda = self.supabase_agenda()
        kommo_created_twice = [k for k, n in kommo.created_by_request.items() if n > 1]
        over = [f"{moment - rec.start:.1f}s" for moment in kommo.violations[:8]]
        backlog = self.backlog()
        dead = self.db.rows(
            "SELECT target, action, status, count(*) FROM kommo_hub_outboundaction "
            "WHERE status NOT IN ('done', 'skipped') GROUP BY 1, 2, 3"
        )
        event_states = self.db.rows(
            "SELECT status, count(*) FROM kommo_hub_inboundevent GROUP BY 1 ORDER BY 1"
        )
        action_states = self.db.rows(
            "SELECT status, count(*) FROM kommo_hub_outboundaction GROUP BY 1 ORDER BY 1"
        )
        hub_retries = self.db.value(
            "SELECT coalesce(sum(greatest(attempts - 1, 0)), 0) FROM kommo_hub_outboundaction"
        )
        absorbed = (
            hub_duplicates
            + sum(n8n.duplicates.values())
            + sum(
                1
                for kind, code in self.booking_results
                if kind == "same booking again" and code == 200
            )
        )
        max_rate = kommo.max_per_window()

        def ms(value: float) -> str:
            return f"{value * 1000:.0f} ms"

        figures = [
            ("webhook requests sent", str(len(webhooks)), f"{self.duplicate_sends} sent twice"),
            ("webhooks accepted (events)", str(accepted), "all but duplicates"),
            ("webhook answer p50", ms(percentile(answers, 50)), ""),
            ("webhook answer p99", ms(percentile(answers, 99)), ""),
            ("webhook → n8n action p50", f"{percentile(latencies, 50):.2f} s",
             "replies wait REPLY_COALESCE_SECONDS"),
            ("webhook → n8n action p95", f"{percentile(latencies, 95):.2f} s", ""),
            ("sender retries (503 / no answer)", str(sender_retries),
             f"{retryable_during_restart} during the Postgres restart"),
            ("5xx outside the restart", str(len(bad_5xx)), "0"),
        ]  # fmt: skip
        for action, count in expected.items():
            figures.append((f"n8n {action} delivered", str(by_action.get(action, 0)), str(count)))
        others = {a: n for a, n in by_action.items() if a not in expected}
        figures += [
            ("n8n other actions", json.dumps(others) if others else "0", "0"),
            ("n8n redeliveries absorbed", str(sum(n8n.duplicates.values())), ""),
            ("n8n calls by its mode", json.dumps(Counter(mode for _t, mode, _k in n8n.calls)), ""),
            ("duplicates absorbed (all)", str(absorbed), "webhooks + n8n + bookings"),
            ("n8n answers", json.dumps(dict(sorted(n8n.statuses.items()))), ""),
            ("Kommo calls", str(len(kommo.times)), ""),
            ("Kommo max calls in any 1 s", str(max_rate), "≤ 7"),
            ("Kommo answers", json.dumps(dict(sorted(kommo.statuses.items()))), ""),
            ("Kommo 429 for the rate (violations)", str(len(kommo.violations)), "0"),
            (
                "Kommo creates whose answer was lost",
                str(kommo.lost_answers),
                "each found again, not created twice",
            ),
            ("hub delivery retries", str(hub_retries), ""),
            ("bookings", json.dumps(Counter(f"{k}: {c}" for k, c in self.booking_results)), ""),
            (
                "Supabase active appointments",
                str(agenda["active"]),
                f"{self.appointments_expected} booked through the API",
            ),
            ("Supabase answers", json.dumps(dict(sorted(agenda["statuses"].items()))), ""),
            ("events by status", json.dumps(dict(event_states)), ""),
            ("actions by status", json.dumps(dict(action_states)), ""),
            ("backlog at the end", json.dumps(backlog), "all 0"),
        ]
        # A burst whose messages were processed further apart than REPLY_COALESCE_SECONDS (a busy
        # machine) rightly gets two replies: each message still gets exactly one answer.
        replies = by_action.get("reply", 0)
        answerable = sum(len(b.message_ids) for c in self.chats for b in c.bursts if not b.paused)
        split = replies - expected_replies
        figures.insert(
            figures.index(("n8n reply delivered", str(replies), str(expected_replies))) + 1,
            ("bursts answered in two replies", str(split), "0 (≤ messages − bursts)"),
        )
        missing = {
            a: (by_action.get(a, 0), n)
            for a, n in expected.items()
            if by_action.get(a, 0) != n and not (a == "reply" and 0 <= split <= answerable - n)
        }
        criteria = [
            Criterion(
                "no 5xx to senders while the database is up",
                not bad_5xx,
                f"{len(bad_5xx)} {bad_5xx[:5]}; {retryable_during_restart} retryable answers "
                "during the restart",
            ),
            Criterion(
                "nothing acknowledged is lost (every webhook finally 200)",
                not lost,
                f"{len(lost)} not accepted: {[(s.kind, s.statuses) for s in lost[:5]]}",
            ),
            Criterion(
                "every expected n8n action delivered exactly once",
                not missing and not others and not unanswered,
                f"mismatch {missing or 'none'}; customer messages not answered exactly once: "
                f"{len(unanswered)}",
            ),
            Criterion(
                "no AI reply after a pause",
                not after_pause
                and not answered_paused
                and sum(1 for c in self.chats if c.paused_window) == self.size.pauses,
                f"{len(after_pause)} replies in a pause, {len(answered_paused)} paused messages "
                f"answered, {sum(1 for c in self.chats if c.paused_window)}/{self.size.pauses} "
                "pauses completed",
            ),
            Criterion(
                "no double booking",
                overlapping == 0
                and contested.get(201, 0) == 1
                and contested.get(409, 0) == sum(contested.values()) - 1,
                f"overlapping appointments: {overlapping}; contested slot answers "
                f"{dict(contested)}",
            ),
            Criterion(
                "Supabase holds every booking once, none overlapping",
                agenda["active"] == self.appointments_expected
                and agenda["overlapping"] == 0
                and agenda["hub_without_supabase"] == 0
                and agenda["hub_active"] == agenda["active"],
                f"Supabase {agenda['active']} active ({agenda['overlapping']} overlapping), hub "
                f"{agenda['hub_active']} active ({agenda['hub_without_supabase']} not in "
                f"Supabase), {self.appointments_expected} booked",
            ),
            Criterion(
                "no reminder twice",
                not twice and len(reminder_pairs) == expected["reminder"],
                f"{len(reminder_pairs)} reminders for {self.appointments_expected} appointments, "
                f"{len(twice)} twice",
            ),
            Criterion(
                "Kommo never above 7 requests/second",
                max_rate <= 7 and not kommo.violations,
                f"max {max_rate} in any 1 s, {len(kommo.violations)} over the limit {over}",
            ),
            Criterion(
                "no Kommo lead or note created twice",
                not kommo_created_twice and not kommo.unknown,
                f"{kommo_created_twice[:5]}; unknown calls {kommo.unknown[:5]}",
            ),
            Criterion(
                "the backlog drains to zero after the faults",
                drained and not any(backlog.values()),
                f"{backlog}; stuck: {dead[:8]}",
            ),
            Criterion(
                "the scenario ran as written",
                not self.errors,
                "; ".join(self.errors[:5]) or "no errors",
            ),
        ]
        return Report(
            size=self.size.name,
            figures=figures,
            criteria=criteria,
            durations={},
            faults=list(rec.faults),
        )


def run(size_name: str = "ci", *, keep: bool = False) -> Report:
    stack = Stack.create(keep=keep)
    day = Day(stack, SIZES[size_name])
    try:
        report = day.run()
        if not report.passed:
            stack.keep = True
            report.logs_dir = str(stack.root)
        return report
    finally:
        day.db.close()
        stack.close()
