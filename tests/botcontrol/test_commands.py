"""#pausar / #voltar: aliases, case and accents, where they appear, and how long a pause lasts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from botcontrol.services import Command, command_parse
from tests.botcontrol.support import NOW, SP

TODAY = NOW.date()
TOMORROW = TODAY + timedelta(days=1)


def at(day: Any, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SP)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#pausar", Command("pause", None, False, "#pausar")),
        ("#PAUSAR", Command("pause", None, False, "#pausar")),
        ("#Pausár", Command("pause", None, False, "#pausar")),
        ("#pause", Command("pause", None, False, "#pause")),
        ("#Humano", Command("pause", None, False, "#humano")),
        (
            "Oi Maria, aqui é o Carlos, vou te atender pessoalmente #pausar",
            Command("pause", None, False, "#pausar"),
        ),
        ("vou assumir #pausar agora, ok?", Command("pause", None, False, "#pausar")),
        ("#pausar 2h", Command("pause", NOW + timedelta(hours=2), True, "#pausar")),
        ("#pausar 2 horas", Command("pause", NOW + timedelta(hours=2), True, "#pausar")),
        ("#pausar 30m", Command("pause", NOW + timedelta(minutes=30), True, "#pausar")),
        ("#pausar 30 min.", Command("pause", NOW + timedelta(minutes=30), True, "#pausar")),
        ("#pausar 90m", Command("pause", NOW + timedelta(minutes=90), True, "#pausar")),
        ("#pausar 1h30", Command("pause", NOW + timedelta(minutes=90), True, "#pausar")),
        ("#pausar até 18h", Command("pause", at(TODAY, 18), True, "#pausar")),
        ("#pausar ATÉ 18H, obrigado", Command("pause", at(TODAY, 18), True, "#pausar")),
        ("#pausar até 18:30", Command("pause", at(TODAY, 18, 30), True, "#pausar")),
        ("#pausar ate 18:30", Command("pause", at(TODAY, 18, 30), True, "#pausar")),
        ("#pausar até às 18h30", Command("pause", at(TODAY, 18, 30), True, "#pausar")),
        ("#pausar até 9h", Command("pause", at(TOMORROW, 9), True, "#pausar")),
        ("#pausar até 13:30", Command("pause", at(TOMORROW, 13, 30), True, "#pausar")),
        ("#pausar até 25h", Command("pause", None, False, "#pausar")),
        ("#pausar 2", Command("pause", None, False, "#pausar")),
        ("#pausar 0m", Command("pause", None, False, "#pausar")),
        ("#voltar", Command("resume", None, False, "#voltar")),
        ("#VOLTAR", Command("resume", None, False, "#voltar")),
        ("pode seguir, #Vóltar.", Command("resume", None, False, "#voltar")),
        ("#bot", Command("resume", None, False, "#bot")),
        ("#resume 2h", Command("resume", None, False, "#resume")),
        ("#pausar 2h ... pronto, #voltar", Command("resume", None, False, "#voltar")),
        (
            "#voltar; não, #pausar 30m",
            Command("pause", NOW + timedelta(minutes=30), True, "#pausar"),
        ),
        ("#pausarx", None),
        ("#pausar_agora", None),
        ("veja o #botão", None),
        ("email@empresa#pausar", None),
        ("pausar sem cerquilha", None),
        ("Olá, tudo bem?", None),
        ("", None),
    ],
)
def test_command_parsing(text: str, expected: Command | None) -> None:
    assert command_parse(text, now=NOW) == expected


def test_aliases_come_from_the_settings(settings: Any) -> None:
    settings.BOT_PAUSE_COMMANDS = ["#Espera"]
    settings.BOT_RESUME_COMMANDS = ["#Segue"]

    assert command_parse("#espera 1h", now=NOW) == Command(
        "pause", NOW + timedelta(hours=1), True, "#espera"
    )
    assert command_parse("#SEGUE", now=NOW) == Command("resume", None, False, "#segue")
    assert command_parse("#pausar", now=NOW) is None


def test_a_clock_time_is_read_in_sao_paulo_whatever_zone_now_is_given_in() -> None:
    command = command_parse("#pausar até 18h", now=NOW.astimezone(UTC))
    assert command is not None
    assert command.until == at(TODAY, 18)
