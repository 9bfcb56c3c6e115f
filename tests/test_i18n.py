"""The admin speaks Brazilian Portuguese by default and English on request; the catalog is complete.

The .po parser below is deliberately small (polib is not a dependency): it understands the subset
`makemessages` writes — comments, flags, msgctxt, msgid, msgid_plural, msgstr, msgstr[n], and
continuation lines.
"""

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise

from kommo_hub.models import EventStatus, InboundEvent, InboundRequest, Source

ROOT = Path(__file__).resolve().parents[1]
PO_PATH = ROOT / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")
PROJECT_APPS = ("kommo_hub", "routing", "botcontrol", "scheduling")


# --- A small .po parser ------------------------------------------------------------------------


@dataclass
class PoEntry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None

    @property
    def key(self) -> str:
        """The key gettext uses in a compiled catalog (context joined by EOT)."""
        return self.msgid if self.msgctxt is None else f"{self.msgctxt}\x04{self.msgid}"


def _po_string(text: str, lineno: int) -> str:
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"line {lineno}: expected a quoted string, got {text!r}")
    # .po escapes (\n, \t, \", \\) are a subset of Python's; literal_eval decodes them.
    return ast.literal_eval(text)


def parse_po(path: Path) -> list[PoEntry]:
    entries: list[PoEntry] = []
    current: PoEntry | None = None
    target: tuple[str, int] | None = None  # which string a continuation line extends

    def start() -> PoEntry:
        nonlocal current
        if current is None or current.msgstr:
            current = PoEntry(line=lineno)
            entries.append(current)
        return current

    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            target = None
            continue
        if line.startswith("#~"):  # obsolete entry: not part of the catalog
            target = None
            continue
        if line.startswith("#,"):
            entry = start()
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            if current is None or target is None:
                raise ValueError(f"line {lineno}: continuation line outside an entry")
            name, index = target
            value = _po_string(line, lineno)
            if name == "msgstr":
                current.msgstr[index] += value
            else:
                setattr(current, name, (getattr(current, name) or "") + value)
            continue
        match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if keyword in ("msgctxt", "msgid"):
            entry = start()
            setattr(entry, keyword, _po_string(rest, lineno))
            target = (keyword, 0)
        elif keyword == "msgid_plural" and current is not None:
            current.msgid_plural = _po_string(rest, lineno)
            target = ("msgid_plural", 0)
        elif keyword == "msgstr" and current is not None:
            current.msgstr[0] = _po_string(rest, lineno)
            target = ("msgstr", 0)
        elif match and current is not None:
            index = int(match.group(1))
            current.msgstr[index] = _po_string(rest, lineno)
            target = ("msgstr", index)
        else:
            raise ValueError(f"line {lineno}: cannot parse {raw!r}")
    return entries


@pytest.fixture(scope="module")
def po_entries() -> list[PoEntry]:
    return parse_po(PO_PATH)


def _nplurals(entries: list[PoEntry]) -> int:
    header = next(entry for entry in entries if entry.is_header)
    match = re.search(r"nplurals\s*=\s*(\d+)", header.msgstr[0])
    assert match, "the .po header has no Plural-Forms"
    return int(match.group(1))


# --- Settings --------------------------------------------------------------------------------


def test_time_zone_is_sao_paulo_and_aware() -> None:
    assert settings.TIME_ZONE == "America/Sao_Paulo"
    assert settings.USE_TZ is True


def test_language_defaults_to_brazilian_portuguese() -> None:
    assert settings.LANGUAGE_CODE == "pt-br"
    assert settings.USE_I18N is True
    assert [code for code, _name in settings.LANGUAGES] == ["pt-br", "en"]
    assert ROOT / "locale" in [Path(p) for p in settings.LOCALE_PATHS]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE


# --- The catalog -----------------------------------------------------------------------------


def test_po_parser_reads_the_catalog(po_entries: list[PoEntry]) -> None:
    header = [entry for entry in po_entries if entry.is_header]
    assert len(header) == 1
    assert "Language: pt_BR" in header[0].msgstr[0]
    assert "plural=(n > 1)" in header[0].msgstr[0]
    by_id = {entry.msgid: entry for entry in po_entries}
    assert by_id["inbound events"].msgstr == {0: "eventos recebidos"}
    assert by_id["%d action queued."].msgid_plural == "%d actions queued."


def test_every_entry_has_a_translation(po_entries: list[PoEntry]) -> None:
    nplurals = _nplurals(po_entries)
    untranslated = []
    for entry in po_entries:
        if entry.is_header:
            continue
        expected = range(nplurals) if entry.msgid_plural is not None else range(1)
        if sorted(entry.msgstr) != list(expected) or not all(
            entry.msgstr[i].strip() for i in expected
        ):
            untranslated.append(f"line {entry.line}: {entry.msgid!r}")
    assert len(po_entries) > 100
    assert not untranslated, "untranslated entries:\n" + "\n".join(untranslated)


def test_no_fuzzy_entries(po_entries: list[PoEntry]) -> None:
    fuzzy = [f"line {e.line}: {e.msgid!r}" for e in po_entries if "fuzzy" in e.flags]
    assert not fuzzy, "fuzzy entries (review them, then drop the flag):\n" + "\n".join(fuzzy)


def test_format_placeholders_survive_translation(po_entries: list[PoEntry]) -> None:
    placeholder = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]|\{[^{}]*\}")
    for entry in po_entries:
        if entry.is_header:
            continue
        wanted = sorted(placeholder.findall(entry.msgid))
        for text in entry.msgstr.values():
            assert sorted(placeholder.findall(text)) == wanted, entry.msgid


def test_compiled_mo_matches_the_po(po_entries: list[PoEntry]) -> None:
    """The .mo is committed (machines without gettext); it must be recompiled with the .po."""
    assert MO_PATH.exists(), "run: .venv/bin/python manage.py compilemessages --ignore=.venv"
    with MO_PATH.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    stale = []
    for entry in po_entries:
        if entry.is_header:
            continue
        if entry.msgid_plural is None:
            compiled = catalog._catalog.get(entry.key)  # type: ignore[attr-defined]
            if compiled != entry.msgstr[0]:
                stale.append(entry.msgid)
        else:
            for index, text in entry.msgstr.items():
                if catalog._catalog.get((entry.key, index)) != text:  # type: ignore[attr-defined]
                    stale.append(entry.msgid)
    assert not stale, "django.mo is out of date, run compilemessages. Stale: " + repr(stale)


def test_every_model_label_is_in_the_catalog(po_entries: list[PoEntry]) -> None:
    """Verbose names and choice labels wrapped in _() must all have a pt-BR translation."""
    translated = {entry.key for entry in po_entries if not entry.is_header}
    labels: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, Promise):
            with translation.override(None):
                labels.add(str(value))

    for app_label in PROJECT_APPS:
        config = apps.get_app_config(app_label)
        collect(config.verbose_name)
        for model in config.get_models():
            collect(model._meta.verbose_name)
            collect(model._meta.verbose_name_plural)
            for model_field in model._meta.get_fields():
                collect(getattr(model_field, "verbose_name", None))
                for _value, label in getattr(model_field, "flatchoices", None) or []:
                    collect(label)
    missing = sorted(labels - translated)
    assert labels
    assert not missing, (
        "strings missing from locale/pt_BR (run makemessages, translate, compilemessages): "
        + repr(missing)
    )


def test_plurals_follow_brazilian_rules() -> None:
    with translation.override("pt-br"):
        one = translation.ngettext("%d action queued.", "%d actions queued.", 1) % 1
        many = translation.ngettext("%d action queued.", "%d actions queued.", 3) % 3
        zero = translation.ngettext("%d alert resolved.", "%d alerts resolved.", 0) % 0
    assert one == "1 ação colocada na fila."
    assert many == "3 ações colocadas na fila."
    assert zero == "0 alerta resolvido."  # pt-BR: plural=(n > 1), zero takes the singular


# --- The admin, rendered ---------------------------------------------------------------------


@pytest.fixture
def dead_event(db: None) -> InboundEvent:
    request = InboundRequest.objects.create(source=Source.KOMMO, body="leads[add][0][id]=1")
    return InboundEvent.objects.create(
        request=request,
        source=Source.KOMMO,
        event_type="lead.add",
        dedupe_key="kommo:i18n-test",
        status=EventStatus.DEAD,
        attempts=8,
    )


def test_admin_index_is_in_portuguese_by_default(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert response.headers["Content-Language"] == "pt-br"
    html = response.content.decode()
    assert '<html lang="pt-br"' in html
    assert "Kommo Hub" in html
    for text in ("Eventos recebidos", "Ações de saída", "Requisições recebidas", "Alertas"):
        assert text in html, text
    assert "Inbound events" not in html
    assert "Outbound actions" not in html


def test_inbound_event_changelist_is_in_portuguese_by_default(
    admin_client: Client, dead_event: InboundEvent
) -> None:
    response = admin_client.get(reverse("admin:kommo_hub_inboundevent_changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Eventos recebidos",
        "Tipo de evento",
        "Tentativas",
        "Próxima tentativa em",
        "Reprocessar eventos selecionados",
        "descartado (tentativas esgotadas)",
        "Formulário do site",
    ):
        assert text in html, text
    assert "Replay selected events" not in html
    assert "dead (gave up)" not in html


def test_replay_action_message_is_in_portuguese(
    admin_client: Client, dead_event: InboundEvent
) -> None:
    response = admin_client.post(
        reverse("admin:kommo_hub_inboundevent_changelist"),
        {"action": "replay", "_selected_action": [dead_event.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 evento colocado na fila novamente." in response.content.decode()


@pytest.mark.parametrize(
    ("cookie", "accept_language"),
    [
        pytest.param("en", None, id="django_language-cookie"),
        pytest.param("en", "pt-BR,pt;q=0.9", id="cookie-beats-accept-language"),
        pytest.param(None, "en", id="accept-language"),
        pytest.param(None, "en-US,en;q=0.9", id="accept-language-en-us"),
    ],
)
def test_admin_switches_to_english_on_request(
    admin_client: Client,
    dead_event: InboundEvent,
    cookie: str | None,
    accept_language: str | None,
) -> None:
    if cookie:
        admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = cookie
    headers = {"accept-language": accept_language} if accept_language else {}

    index = admin_client.get(reverse("admin:index"), headers=headers)
    changelist = admin_client.get(
        reverse("admin:kommo_hub_inboundevent_changelist"), headers=headers
    )

    assert index.headers["Content-Language"] == "en"
    index_html = index.content.decode()
    assert "Kommo Hub" in index_html
    assert "Site administration" in index_html
    assert "Inbound events" in index_html
    assert "Outbound actions" in index_html
    assert "Eventos recebidos" not in index_html
    changelist_html = changelist.content.decode()
    assert "Replay selected events" in changelist_html
    assert "Event type" in changelist_html
    assert "dead (gave up)" in changelist_html
    assert "Reprocessar eventos selecionados" not in changelist_html


def test_portuguese_accept_language_is_honoured(admin_client: Client) -> None:
    response = admin_client.get(
        reverse("admin:index"), headers={"accept-language": "pt-BR,pt;q=0.9"}
    )

    assert response.headers["Content-Language"] == "pt-br"
    assert "Eventos recebidos" in response.content.decode()


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_lists_every_variable_settings_reads() -> None:
    source = (ROOT / "kommo_hub" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", source))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert len(read) > 40
    assert not sorted(read - listed), "add these to .env.example: " + repr(sorted(read - listed))
