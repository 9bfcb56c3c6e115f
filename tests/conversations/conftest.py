"""Flow 2 tests: English forced (results and texts are asserted in their source language), a
frozen clock, a fake n8n and the fake Kommo on real local servers (each test has its own cache:
tests/conftest.py)."""

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.utils import translation

from routing.models import Strategy
from tests.conversations.support import N8N_SECRET, NOW
from tests.flows.fakes import FakeKommo, fake_kommo
from tests.outbox.support import LocalHttpServer
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.routing.factories import always_working as works_always

__all__ = ["FakeKommo", "fake_kommo"]

PIPELINE, STAGE = 7654321, 61234501
ANA_KOMMO, BRUNO_KOMMO = 9876501, 9876502


@pytest.fixture(autouse=True)
def english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def n8n(settings: Any) -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        settings.N8N_WEBHOOK_URL = f"{server.url}/webhook/kommo-hub"
        settings.N8N_WEBHOOK_SECRET = N8N_SECRET
        yield server


@pytest.fixture
def sales() -> dict[str, Any]:
    area = AreaFactory(
        name="Vendas",
        slug="vendas",
        is_default=True,
        strategy=Strategy.ROUND_ROBIN,
        kommo_pipeline_id=PIPELINE,
        kommo_status_id=STAGE,
        reply_sla_minutes=30,
        ai_instructions="Seja cordial.",
        first_message_hint="Agradeça o contato.",
    )
    people = {}
    for name, kommo_id in (("Ana", ANA_KOMMO), ("Bruno", BRUNO_KOMMO)):
        person = SalespersonFactory(name=name, kommo_user_id=kommo_id, phone="+5511900000000")
        works_always(person)
        AreaMembershipFactory(area=area, salesperson=person)
        people[name] = person
    return {"area": area, **people}
