"""Does a customer's message ask for a meeting, to move one or to cancel one, and for when?

Pure functions: no database, no settings. `detect_intent(text, at=...)` reads Brazilian
Portuguese ignoring case and accents and answers an `Intent` (kind and the date/time the customer
proposed, relative to `at` in America/Sao_Paulo) or None.

Kinds
- reschedule: "remarcar", "reagendar", "mudar/trocar/alterar/adiar/passar o horário / a data /
  a reunião", or a cancel and a new booking in one message ("cancela e marca sexta").
- cancel: "desmarcar", "cancelar" with a meeting word (reunião, call, agendamento, horário, visita…)
  or a day ("cancelar amanhã"), "não vou poder comparecer / ir na reunião". "cancelar o pedido /
  a assinatura" is not about a meeting: None.
- schedule: "agendar", "marcar", "agendamento", "tem horário?", "horários disponíveis",
  "disponibilidade", a meeting word with a request ("quero uma reunião", "podemos fazer uma
  call?"), a day or time with a proposal ("pode ser amanhã às 15h?", "sexta fica bom?"), or a
  message that is nothing but a time ("sexta 14:00", "amanhã às 15h?", "dia 12?").

Decisions
- Negation: "não", "nem", "nunca", "jamais" up to three words before the trigger, in the same
  clause, cancels it ("não quero agendar nada" → None). A negative *question* is a request: "não
  dá pra marcar amanhã?" / "não tem como agendar?" → schedule.
- Scheduling something that is not a meeting is not an intent: "agendamento de entrega?",
  "agendar o pagamento", "marcar como lido" → None (a delivery or a payment is not in the
  salesperson's agenda; the AI answers it as a normal message).
- Opening hours are not availability: "qual o horário de funcionamento?" → None.
- A bare day without a time or a question ("amanhã", "hoje") is not an intent: it answers too
  many other questions.

Dates and times (the message's time `at`, read in America/Sao_Paulo)
- "hoje", "amanhã", "depois de amanhã"; "daqui a 2 horas / 30 minutos / 3 dias".
- Weekday names ("segunda", "terça-feira", "sábado") mean the next such day, never today: on a
  Monday, "segunda" is the Monday a week later (people say "hoje" for today). "terça que vem" /
  "próxima terça" are the same next Tuesday; "terça da semana que vem" is the Tuesday of next
  week (weeks start on Monday); "semana que vem" alone is next week's Monday.
- "dia 12" is the next 12th: this month's if it is still ahead (today only if the time asked
  for has not passed), else the next month that has a 12th. "12/12", "12/12/2026",
  "12 de dezembro": this year's, or next year's once it has passed.
- Times: "15h", "15hs", "15 horas", "15:00", "9h30", "às 9", "meio-dia", "3 da tarde",
  "às 3 e meia". Hours 1 to 6 without "da manhã" are afternoon (15h for "às 3"): nobody books a
  sales call at 3 a.m. A time alone is today if still ahead, else tomorrow.
- Periods: manhã / cedo 08:00–12:00, tarde 12:00–18:00, noite 18:00–21:00, "fim da tarde"
  16:00–18:00; "entre 14h e 16h" / "das 14h às 16h" is that period; "depois das 15h" is
  15:00–21:00, "antes das 10h" 08:00–10:00. A period alone is today's if not over yet, else
  tomorrow's. "Boa tarde", "bom dia", "boa noite" and "mais tarde" are not periods.
- `proposed_start`: the exact time asked for, or the start of the period asked for; a day with
  no time is the whole business day (08:00 with the period 08:00–21:00). `proposed_period` is
  None when the customer gave an exact time. A cancel's date names the meeting to cancel.
- Several mentions ("não posso amanhã, pode ser sexta às 10h?", "cancela a de amanhã e remarca
  pra sexta"): the one next to a proposal ("pode ser", "fica bom", "que tal"…) wins, else one
  that is not negated: for a reschedule the one after "para/pra", else the last; for a cancel
  or a booking the first. A day and a time in separate sentences ("amanhã? de manhã") join.
- The date of an impossible day ("31/02") is dropped; the intent stays.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

SAO_PAULO = ZoneInfo("America/Sao_Paulo")

MORNING = (time(8), time(12))
AFTERNOON = (time(12), time(18))
EVENING = (time(18), time(21))
LATE_AFTERNOON = (time(16), time(18))
BUSINESS_DAY = (time(8), time(21))


class IntentKind(StrEnum):
    SCHEDULE = "schedule"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Intent:
    kind: IntentKind
    proposed_start: datetime | None
    proposed_period: tuple[time, time] | None
    why: str  # what matched, for logs and the admin: "schedule: 'marcar'; proposed: …"


# --- normalizing ---------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower-case without accents, typographic quotes and dashes made plain, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = plain.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")
    return re.sub(r"[ \t]+", " ", plain)


def _blank(text: str, start: int, end: int) -> str:
    """The same text with [start, end) replaced by spaces (positions kept)."""
    return text[:start] + " " * (end - start) + text[end:]


# --- triggers ------------------------------------------------------------------------------------

_MEETING = (
    r"(?:reuniao|reunioes|call|calls|chamada|videochamada|video\s?chamada|ligacao|meet|zoom|"
    r"agendamento|horario|visita|encontro|consulta|demonstracao|demo|apresentacao|"
    r"compromisso|marcacao|bate[\s-]?papo)"
)
# What a customer may want to schedule that is not a meeting with the salesperson.
_NOT_A_MEETING = re.compile(
    r"\s*(?:(?:de|da|do|das|dos|o|a|os|as|meu|minha|um|uma|pra|para|pro|no|na|com)\s+){0,2}"
    r"(?:entregas?|pagamentos?|boletos?|envio|coleta|retirada|frete|pix|transferencia|cobranca|"
    r"mensagens?|e-?mail|posts?|publicacao|pedidos?|encomenda|compra|presenca|como\b|lidos?|"
    r"lidas?|stories|story|foto|fotos|comentarios?|assinatura|plano|contrato|servico|conta|"
    r"cartao|cadastro)\b"
)
_OPENING_HOURS = re.compile(
    r"horarios?\s+(?:de|do|da)\s+(?:funcionamento|atendimento|abertura|fechamento|loja|"
    r"expediente|trabalho)|que\s+horas?\s+(?:voces\s+|vcs\s+|a\s+loja\s+)?(?:abre|abrem|fecha|"
    r"fecham|funciona|funcionam|atende|atendem|chega|chegam)"
)
_RESCHEDULE = [
    re.compile(r"\b(?:remarc\w*|reagend\w*|re-marcar|re-agendar)\b"),
    re.compile(
        r"\b(?:mudar|muda|mude|trocar|troca|troque|alterar|altera|altere|adiar|adia|adie|"
        r"antecipar|antecipa|transferir|passar|passa|empurrar)\b"
        r"(?:\s+\w+){0,3}?\s+(?:o\s+|a\s+|do\s+|da\s+|de\s+|nosso\s+|nossa\s+|minha\s+|meu\s+)?"
        r"(?:horario|data|dia|hora|reuniao|call|agendamento|encontro|visita|"
        r"compromisso|consulta|chamada|ligacao|demonstracao|apresentacao)\b"
    ),
    re.compile(r"\b(?:adiar|adia|adie|antecipar|antecipa)\b"),
]
_CANCEL = [
    re.compile(r"\bdesmarc\w*\b"),
    re.compile(
        r"\bnao\s+(?:vou|vai|irei|vamos)\s+(?:mais\s+)?(?:poder|conseguir|dar\s+pra|dar\s+para)\s+"
        r"(?:ir|comparecer|participar|estar\s+presente|entrar)\b"
    ),
]
_CANCEL_WORD = re.compile(r"\b(?:cancelar|cancela|cancele|cancelo|cancelamento|cancelem)\b")
_SCHEDULE = [
    re.compile(
        r"\b(?:agendar|agendamos|agende|agendem|agendaria|agendasse|agendamento|"
        r"marcar|marcamos|marque|marquem|marcaria|marcasse|marcacao)\b"
    ),
    # "agenda" / "marca" as verbs: "agenda pra mim", "marca uma call" (not "a marca", "sua agenda")
    re.compile(
        r"(?<!\ba )(?<!\bda )(?<!\bde )(?<!\bsua )(?<!\bessa )(?<!\bqual )"
        r"\b(?:agenda|marca)\s+(?:pra|para|pro|uma|um|ai|la|entao|comigo|a\s+reuniao|"
        r"a\s+call|amanha|hoje|segunda|terca|quarta|quinta|sexta|sabado|domingo|dia)\b"
    ),
    re.compile(
        r"\b(?:tem|tens|teria|temos|ha|haveria|existe)\s+(?:algum\s+|alguma\s+|um\s+|uma\s+)?"
        r"(?:horario|horarios|hora|vaga|vagas|agenda|disponibilidade|espaco|encaixe)\b"
    ),
    re.compile(
        r"\b(?:horario|horarios|hora|dia|dias|data|datas|agenda)\s+(?:disponive\w*|livres?|"
        r"vagos?|vagas?|abertos?)\b"
    ),
    re.compile(r"\bdisponibilidade\b"),
    re.compile(
        r"\b(?:quais|qual|que)\s+(?:os\s+|o\s+|seus\s+|seu\s+)?(?:melhores?\s+)?horarios?\b"
    ),
    re.compile(
        r"\bque\s+horas?\s+(?:(?:voce|vc|voces|vcs|o\s+senhor|a\s+senhora)\s+)?(?:pode|podem|"
        r"podemos|consegue|conseguem|fica|ficaria|seria|tem|teria)\b"
    ),
    re.compile(
        r"\b(?:quero|queria|quer|gostaria|podemos|poderiamos|poderia|pode|da\s+pra|da\s+para|"
        r"daria\s+pra|daria\s+para|tem\s+como|teria\s+como|vamos|bora|fazer|fazermos|"
        r"preciso|precisamos|solicitar|solicito)\b"
        r"(?:\s+(?!cancel|desmarc|remarc|reagend)\w+){0,3}?\s+" + _MEETING + r"\b"
    ),
]
# Next to a day or time, these make it a proposal: "pode ser amanhã às 15h?", "sexta fica bom?".
_PROPOSAL = re.compile(
    r"\b(?:pode\s+ser|podemos|podia|poderia|pode|posso|fica\s+bom|fica\s+melhor|ficaria|"
    r"fica|daria|da\s+pra|da\s+para|consegue|conseguimos|consigo|seria\s+possivel|seria|"
    r"tem\s+como|que\s+tal|prefiro|prefere|preferia|melhor|funciona|serve|combinado|vamos|"
    r"bora|topa|topo|rola|me\s+liga|me\s+ligar|me\s+ligue|liga\s+pra\s+mim|ligar|"
    r"conversar|conversamos|encontrar|nos\s+vemos)\b"
)
_NEGATION = re.compile(r"\b(?:nao|nem|nunca|jamais|n)\b")
_REQUEST_AFTER_NO = re.compile(
    r"\s*(?:da|daria|tem|teria|seria|pode|poderia|podemos|poderiamos|rola|consegue|"
    r"conseguimos|quer|gostaria|vamos)\b"
)
_CLAUSE_END = re.compile(r"[.!?;,\n]|\bmas\b|\bporem\b|\bentretanto\b")
# Words that may surround a day/time and keep it a bare proposal ("ok, sexta 14:00 então").
_FILLER_WORDS = (
    "ok okay oi ola opa sim entao pode ser seria fica ficaria bom boa melhor otimo otima "
    "perfeito perfeita beleza blz combinado consigo conseguimos posso podemos prefiro preferencia "
    "de da do das dos as a o e ou para pra pro mim me te eu nos gente tipo talvez quem sabe que "
    "tal por volta umas uns la ai isso esse essa este esta no na em dia horario hora certo "
    "certinho tudo bem vale show top fechado ta tah pfv pf favor voce vc voces vcs senhor senhora "
    "sr sra falar conversar ligar"
)
_FILLER = frozenset(_FILLER_WORDS.split())
# What may stand between two parts of one date/time: "sexta, às 14h", "amanhã de manhã".
_JOINER_WORDS = "de da do as a o e na no pela pelas em la pras pra para por volta umas tipo ali"
_JOINERS = frozenset(_JOINER_WORDS.split())


# --- dates and times -----------------------------------------------------------------------------

_WEEKDAYS = {
    "segunda": 0,
    "terca": 1,
    "quarta": 2,
    "quinta": 3,
    "sexta": 4,
    "sabado": 5,
    "domingo": 6,
}
_MONTHS = {
    "janeiro": 1,
    "fevereiro": 2,
    "marco": 3,
    "abril": 4,
    "maio": 5,
    "junho": 6,
    "julho": 7,
    "agosto": 8,
    "setembro": 9,
    "outubro": 10,
    "novembro": 11,
    "dezembro": 12,
}
_NOT_WHEN = re.compile(
    r"\b(?:bom\s+dia|boa\s+tarde|boa\s+noite|boas\s+tardes|mais\s+tarde|tarde\s+demais|"
    r"segunda\s+(?:via|vez|opcao|parcela|mao|etapa|fase|chance)|"
    r"quarta\s+(?:parte|vez|opcao|parcela)|quinta\s+(?:parte|vez|opcao|parcela|essencia)|"
    r"ate\s+(?:amanha|segunda|terca|quarta|quinta|sexta|sabado|domingo|mais|logo|breve)|"
    r"(?:\d+\s*)?(?:x|vezes)\s+de\s+\d+|r\$\s*[\d.,]+|\d+[.,]\d+)\b"
)
_HOUR = r"(?:[01]?\d|2[0-3])"
_MIN = r"[0-5]\d"
# A time written as a time: 15h, 15hs, 15 horas, 15:00, 9h30, 9:30h, "e meia", meio-dia.
_CLOCK = (
    rf"(?:{_HOUR}\s?(?::\s?{_MIN}|h\s?{_MIN}|hs|hrs?|horas?|h)(?:\s?(?:h|hs|hrs))?"
    r"(?:\s+e\s+meia)?|meio[\s-]dia(?:\s+e\s+meia)?)"
)
# After "às" the number alone is enough: "às 9", "às 3 e meia".
_AFTER_AS = rf"(?:{_CLOCK}|{_HOUR}(?:\s+e\s+meia)?)"
_PERIOD_WORD = r"(?:manha|tarde|noite|cedo)"
_WEEKDAY = "|".join(_WEEKDAYS)
_BARE_HOUR_FOLLOWERS = (
    r"(?=\s*(?:$|[?!.,;]|ou\b|fica|pode|seria|amanha|hoje|na\b|no\b|em\b|pra\b|para\b|ta\b|"
    r"esta\b|ok\b|entao|que\b|e\b|com\b|mesmo|certo|dia\b|depois|" + _WEEKDAY + r"))"
)


@dataclass(frozen=True)
class _Atom:
    start: int
    end: int
    kind: str  # day, dom (day of month), time, period, exact
    value: object
    text: str


@dataclass
class _When:
    """One mention of when: atoms next to each other ("sexta", "às 14h")."""

    atoms: list[_Atom]

    @property
    def start(self) -> int:
        return self.atoms[0].start

    @property
    def end(self) -> int:
        return self.atoms[-1].end

    def get(self, kind: str) -> _Atom | None:
        return next((a for a in self.atoms if a.kind == kind), None)

    @property
    def text(self) -> str:
        return ", ".join(a.text for a in self.atoms)

    @property
    def precise(self) -> bool:
        """A time or a period, not just a day."""
        return any(a.kind in ("time", "period", "exact") for a in self.atoms)


def _clock(text: str, *, period: str = "") -> time | None:
    """`15h`, `9:30`, `3 e meia`, `meio-dia` → a time; 1–6 without "manhã" is the afternoon."""
    text = text.strip()
    if text.startswith("meio"):
        return time(12, 30) if "meia" in text else time(12)
    match = re.match(rf"({_HOUR})(?:\s?(?::|h)\s?({_MIN}))?", text)
    if match is None:
        return None
    hour = int(match.group(1))
    minute = int(match.group(2) or 0)
    if re.search(r"e\s+meia", text):
        minute = 30
    evening = period in ("tarde", "noite") and hour < 12
    if evening or (period not in ("manha", "cedo") and 1 <= hour <= 6):
        hour += 12
    return time(hour, minute)


def _period(word: str) -> tuple[time, time]:
    if word in ("manha", "cedo"):
        return MORNING
    if word == "tarde":
        return AFTERNOON
    return EVENING


def _date_or_none(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _this_or_next_year(day: int, month: int, year_text: str | None, today: date) -> date | None:
    if year_text:
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        return _date_or_none(year, month, day)
    candidate = _date_or_none(today.year, month, day)
    if candidate is not None and candidate < today:
        candidate = _date_or_none(today.year + 1, month, day)
    return candidate


def _next_day_of_month(day: int, today: date, *, today_ok: bool) -> date | None:
    year, month = today.year, today.month
    for _ in range(13):
        candidate = _date_or_none(year, month, day)
        if candidate is not None and (candidate > today or (candidate == today and today_ok)):
            return candidate
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _atoms(folded: str, now: datetime) -> tuple[list[_Atom], str]:
    """Every date, time and period in a folded text (in order), and the text without them."""
    today = now.date()
    text = _NOT_WHEN.sub(lambda m: " " * len(m.group(0)), folded)
    atoms: list[_Atom] = []

    def each(pattern: str) -> list[re.Match[str]]:
        nonlocal text
        matches = list(re.finditer(pattern, text))
        for match in matches:
            text = _blank(text, match.start(), match.end())
        return matches

    def add(match: re.Match[str], kind: str, value: object) -> None:
        atoms.append(_Atom(match.start(), match.end(), kind, value, match.group(0).strip()))

    for m in each(
        r"\b(?:daqui\s+a|daqui|em|dentro\s+de)\s+(\d{1,3}|uma|um|duas|dois|meia)\s+"
        r"(horas?|h|hrs?|minutos?|min|dias?)\b"
    ):
        words = {"um": 1.0, "uma": 1.0, "dois": 2.0, "duas": 2.0, "meia": 0.5}
        amount = words.get(m.group(1)) or float(m.group(1))
        unit = m.group(2)
        if unit.startswith("d"):
            add(m, "day", today + timedelta(days=int(amount)))
        else:
            delta = timedelta(minutes=amount) if unit.startswith("m") else timedelta(hours=amount)
            add(m, "exact", (now + delta).replace(second=0, microsecond=0))
    # Days written as dates come first: "12/12 de manhã" is not "12 da manhã".
    for m in each(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b"):
        day = _this_or_next_year(int(m.group(1)), int(m.group(2)), m.group(3), today)
        if day is not None:
            add(m, "day", day)
    months = "|".join(_MONTHS)
    for m in each(rf"\b(?:dia\s+)?(\d{{1,2}})\s+de\s+({months})(?:\s+de\s+(\d{{4}}))?\b"):
        day = _this_or_next_year(int(m.group(1)), _MONTHS[m.group(2)], m.group(3), today)
        if day is not None:
            add(m, "day", day)
    for m in each(r"\bdia\s+(\d{1,2})\b(?!\s*(?:[/:]|h\b|hs\b|horas?\b))"):
        if 1 <= int(m.group(1)) <= 31:
            add(m, "dom", int(m.group(1)))
    # Times.
    for m in each(
        rf"\b(?:entre|das|de)\s+({_AFTER_AS})\s+(?:e|as|a|ate)\s+({_AFTER_AS})"
        rf"(?:\s+(?:da|de)\s+({_PERIOD_WORD}))?\b"
    ):
        word = m.group(3) or ""
        first, last = _clock(m.group(1), period=word), _clock(m.group(2), period=word)
        if first is not None and last is not None and last > first:
            add(m, "period", (first, last))
    for m in each(rf"\b(depois\s+das?|a\s+partir\s+das?|apos\s+as?|antes\s+das?)\s+({_AFTER_AS})"):
        limit = _clock(m.group(2))
        if limit is None:
            continue
        if m.group(1).startswith("antes"):
            add(m, "period", (min(MORNING[0], limit), limit))
        else:
            add(m, "period", (limit, max(limit, BUSINESS_DAY[1])))
    for m in each(rf"\b(?:as\s+)?({_AFTER_AS})\s+(?:da|de|pela)\s+({_PERIOD_WORD})\b"):
        add(m, "time", _clock(m.group(1), period=m.group(2)))
    for m in each(rf"\b(?:as\s+|pelas\s+|umas\s+)?{_CLOCK}(?![\w/])"):
        add(m, "time", _clock(re.sub(r"^(?:as|pelas|umas)\s+", "", m.group(0))))
    for m in each(
        r"\b(?:as|pelas|umas|pras|para\s+as|pra\s+as|por\s+volta\s+das|la\s+pelas)\s+"
        rf"({_HOUR}(?:\s+e\s+meia)?){_BARE_HOUR_FOLLOWERS}"
    ):
        add(m, "time", _clock(m.group(1)))
    # Days in words.
    for m in each(r"\bdepois\s+d[e']?\s*amanha\b"):
        add(m, "day", today + timedelta(days=2))
    for m in each(r"\bamanha\b"):
        add(m, "day", today + timedelta(days=1))
    for m in each(r"\b(?:hoje|hj)\b"):
        add(m, "day", today)
    for m in each(
        rf"\b(?:(?:na|nessa|nesta|essa|esta|proxima|prox)\s+)?({_WEEKDAY})(?:[\s-]feira)?"
        r"(?:\s+(?:(?:da\s+)?(semana\s+que\s+vem|proxima\s+semana)|que\s+vem|agora))?\b"
    ):
        target = _WEEKDAYS[m.group(1)]
        if m.group(2):
            next_monday = today + timedelta(days=7 - today.weekday())
            add(m, "day", next_monday + timedelta(days=target))
        else:
            add(m, "day", today + timedelta(days=(target - today.weekday() - 1) % 7 + 1))
    for m in each(r"\b(?:(?:na|a)\s+)?(?:semana\s+que\s+vem|proxima\s+semana)\b"):
        add(m, "day", today + timedelta(days=7 - today.weekday()))
    # Periods.
    for m in each(r"\b(?:no\s+)?(?:fim|final)\s+da\s+tarde\b"):
        add(m, "period", LATE_AFTERNOON)
    for m in each(rf"\b(?:(?:de|da|pela|na|a|nesta|essa|esta|logo|bem)\s+)?({_PERIOD_WORD})\b"):
        add(m, "period", _period(m.group(1)))
    atoms = [a for a in atoms if a.value is not None]
    atoms.sort(key=lambda a: a.start)
    return atoms, text


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9$]+", text)


def _mentions(atoms: list[_Atom], folded: str) -> list[_When]:
    """Atoms next to each other (only joiners between) make one mention, one of each kind."""
    mentions: list[_When] = []
    for atom in atoms:
        if mentions:
            last = mentions[-1]
            between = folded[last.end : atom.start]
            joined = all(w in _JOINERS for w in _words(between)) and not re.search(
                r"[?!.;]", between
            )
            kinds = {a.kind for a in last.atoms}
            clash = atom.kind in kinds or (atom.kind in ("day", "dom") and kinds & {"day", "dom"})
            if joined and not clash and "exact" not in kinds and atom.kind != "exact":
                last.atoms.append(atom)
                continue
        mentions.append(_When([atom]))
    return mentions


def _resolve(when: _When, now: datetime) -> tuple[datetime, tuple[time, time] | None] | None:
    """The proposed start and period of one mention."""
    exact = when.get("exact")
    if exact is not None:
        assert isinstance(exact.value, datetime)
        return exact.value, None
    today = now.date()
    clock_atom, period_atom = when.get("time"), when.get("period")
    clock = clock_atom.value if clock_atom else None
    period = period_atom.value if period_atom else None
    assert clock is None or isinstance(clock, time)
    assert period is None or isinstance(period, tuple)
    if clock is not None and period is not None:
        if period[0] >= time(12) and clock.hour < 12:  # "amanhã à tarde, às 3"
            clock = time(clock.hour + 12, clock.minute)
        period = None
    wanted = clock or (period[0] if period else None)
    latest = clock or (period[1] if period else BUSINESS_DAY[1])
    still_today = datetime.combine(today, latest, SAO_PAULO) > now
    day_atom, dom_atom = when.get("day"), when.get("dom")
    day: date | None = None
    if day_atom is not None:
        assert isinstance(day_atom.value, date)
        day = day_atom.value
    elif dom_atom is not None:
        assert isinstance(dom_atom.value, int)
        day = _next_day_of_month(dom_atom.value, today, today_ok=still_today)
    elif wanted is not None:
        day = today if still_today else today + timedelta(days=1)
    if day is None:
        return None
    if wanted is None:
        return datetime.combine(day, BUSINESS_DAY[0], SAO_PAULO), BUSINESS_DAY
    return datetime.combine(day, wanted, SAO_PAULO), period


# --- the detector --------------------------------------------------------------------------------


def _clause_start(text: str, position: int) -> int:
    start = 0
    for match in _CLAUSE_END.finditer(text, 0, position):
        start = match.end()
    return start


def _is_question(text: str, position: int) -> bool:
    end = _CLAUSE_END.search(text, position)
    if end is None:
        return text.rstrip().endswith("?")
    return end.group(0) == "?"


def _negated(text: str, position: int) -> bool:
    """A negation up to three words before `position` in its clause (a negative question such
    as "não dá pra marcar?" is a request, not a negation)."""
    window = " ".join(text[_clause_start(text, position) : position].split()[-3:])
    question = _is_question(text, position)
    for negation in _NEGATION.finditer(window):
        if question and _REQUEST_AFTER_NO.match(window[negation.end() :]):
            continue
        return True
    return False


def _not_a_meeting(text: str, end: int) -> bool:
    return _NOT_A_MEETING.match(text, end) is not None


def _first(patterns: list[re.Pattern[str]], text: str, *, objects: bool = True) -> str:
    """The first trigger that is neither negated nor about something other than a meeting."""
    for pattern in patterns:
        for match in pattern.finditer(text):
            if _negated(text, match.start()):
                continue
            if objects and _not_a_meeting(text, match.end()):
                continue
            return match.group(0)
    return ""


def _cancel(text: str, mentions: list[_When]) -> str:
    found = _first(_CANCEL, text, objects=False)
    if found:
        return found
    for match in _CANCEL_WORD.finditer(text):
        if _negated(text, match.start()) or _not_a_meeting(text, match.end()):
            continue
        if mentions or re.search(rf"\b{_MEETING}\b", text):
            return match.group(0)
    return ""


def _near(text: str, first_end: int, second_start: int, *, clauses: bool = False) -> bool:
    """Only filler words (at most three) between two positions, in one clause (or, with
    `clauses`, across a comma)."""
    between = text[first_end:second_start]
    words = _words(between)
    if len(words) > 3 or not all(w in _FILLER for w in words):
        return False
    return not re.search(r"[.!?;]" if clauses else r"[.!?;,]", between)


def _proposed(text: str, mentions: list[_When]) -> tuple[_When | None, str]:
    """The mention a proposal word stands next to, and that word: the one right after it ("pode
    ser sexta?"), else the one right before a proposal that ends its clause ("sexta, pode ser?")."""
    proposals = [m for m in _PROPOSAL.finditer(text) if not _negated(text, m.start())]
    for match in proposals:
        for when in mentions:
            if match.end() <= when.start and _near(text, match.end(), when.start):
                return when, match.group(0)
    for match in proposals:
        stop = _CLAUSE_END.search(text, match.end())
        if not _only_when(text[match.end() : stop.start() if stop else len(text)]):
            continue
        for when in mentions:
            if when.end <= match.start() and _near(text, when.end, match.start(), clauses=True):
                return when, match.group(0)
    return None, ""


def _only_when(rest: str) -> bool:
    return all(word in _FILLER for word in _words(rest))


def detect_intent(text: str, *, at: datetime) -> Intent | None:
    """The scheduling intent of a customer's message (or of a burst of them), or None.

    `at`: when the message was sent (aware); dates are read in America/Sao_Paulo.
    """
    if at.tzinfo is None:
        raise ValueError("`at` must be an aware datetime")
    if not text or not text.strip():
        return None
    now = at.astimezone(SAO_PAULO)
    folded = fold(text)
    atoms, rest = _atoms(folded, now)
    mentions = _mentions(atoms, folded)
    triggers = _OPENING_HOURS.sub(lambda m: " " * len(m.group(0)), folded)

    reschedule = _first(_RESCHEDULE, triggers)
    cancel = _cancel(triggers, mentions)
    schedule = _first(_SCHEDULE, triggers)
    proposed, proposal = _proposed(folded, mentions)
    bare = mentions and _only_when(rest) and (any(m.precise for m in mentions) or "?" in folded)
    if bare and not (reschedule or cancel or schedule or proposal):
        proposal = "a day/time alone"

    if reschedule:
        kind, word = IntentKind.RESCHEDULE, reschedule
    elif cancel and (schedule or proposal):
        kind, word = IntentKind.RESCHEDULE, f"{cancel} + {schedule or proposal}"
    elif cancel:
        kind, word = IntentKind.CANCEL, cancel
    elif schedule or proposal:
        kind, word = IntentKind.SCHEDULE, schedule or proposal
    else:
        return None

    when = proposed or _pick(kind, folded, mentions)
    if when is not None and not when.precise:
        when = _completed(when, mentions, folded)
    resolved = _resolve(when, now) if when is not None else None
    why = f"{kind.value}: '{word}'"
    if when is None or resolved is None:
        return Intent(kind=kind, proposed_start=None, proposed_period=None, why=why)
    start, period = resolved
    why += f"; proposed {start:%Y-%m-%d %H:%M}"
    if period is not None:
        why += f" ({period[0]:%H:%M}-{period[1]:%H:%M})"
    why += f" from '{when.text}'"
    return Intent(kind=kind, proposed_start=start, proposed_period=period, why=why)


def _completed(when: _When, mentions: list[_When], text: str) -> _When:
    """A day followed by a time or period on its own ("amanhã? de manhã") is one mention."""
    following = [m for m in mentions if m.start >= when.end]
    if not following or _negated(text, following[0].start):
        return when
    kinds = {a.kind for a in following[0].atoms}
    if following[0].precise and not kinds & {"day", "dom"}:
        return _When([*when.atoms, *following[0].atoms])
    return when


def _pick(kind: IntentKind, text: str, mentions: list[_When]) -> _When | None:
    """Without a proposal word next to one: a cancel names the meeting (the first mention); a
    move names its new time (the one after "para", else the last); a booking its first."""
    usable = [m for m in mentions if not _negated(text, m.start)]
    if not usable:
        return None
    if kind == IntentKind.CANCEL:
        return usable[0]
    if kind == IntentKind.RESCHEDULE:
        for when in usable:
            if re.search(
                r"\b(?:para|pra|pro)\s*$", text[_clause_start(text, when.start) : when.start]
            ):
                return when
        return usable[-1]
    return usable[0]
