"""Idempotent demo data: logins, areas, salespeople, rules, and a few leads that went through
the real intake pipeline (so they are routed, and their Kommo and n8n actions wait in the outbox
until those systems are configured)."""

import json
from datetime import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from kommo_hub import roles
from kommo_hub.intake.brackets import parse_bracket_form
from kommo_hub.intake.kommo import split_kommo_body
from kommo_hub.intake.leads import split_rdstation_body
from kommo_hub.intake.parsed import ParsedEvent, make_key
from kommo_hub.intake.processing import event_process
from kommo_hub.intake.store import inbound_request_store
from kommo_hub.models import EventStatus, InboundEvent, Source
from routing.models import (
    Area,
    AreaMembership,
    ConditionField,
    RoutingRule,
    RuleCondition,
    Salesperson,
    Strategy,
    WorkingHours,
)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
MANAGER = ("gerente", "gerente-demo-2026")
SALESPERSON = ("vendedor", "vendedor-demo-2026")


class Command(BaseCommand):
    help = "Create demo logins and demo leads (safe to run again: nothing is duplicated)."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        with transaction.atomic():
            manager, created = users.objects.get_or_create(
                username=MANAGER[0],
                defaults={"is_staff": True, "is_superuser": True, "first_name": "Gerente"},
            )
            if created:
                manager.set_password(MANAGER[1])
                manager.save()
            seller, created = users.objects.get_or_create(
                username=SALESPERSON[0], defaults={"is_staff": True, "first_name": "Carlos"}
            )
            if created:
                seller.set_password(SALESPERSON[1])
                seller.save()
            # The roles (groups created by a migration): the manager is also a superuser.
            manager.groups.add(Group.objects.get_or_create(name=roles.MANAGERS)[0])
            seller.groups.add(Group.objects.get_or_create(name=roles.SALESPEOPLE)[0])
            self._routing(seller)
        self._ingest(Source.KOMMO, "lead_add.form", self._kommo)
        self._ingest(Source.KOMMO, "message_incoming_whatsapp.form", self._kommo)
        self._ingest(Source.RDSTATION, "conversion_webhook_converted.json", self._rd)
        self._ingest(Source.FORMS, "website_form.json", self._form)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  manager login:     {MANAGER[0]} / {MANAGER[1]}")
        self.stdout.write(f"  salesperson login: {SALESPERSON[0]} / {SALESPERSON[1]}")

    @staticmethod
    def _routing(seller: Any) -> None:
        """Two areas, four people available every hour of the week, and two rules."""
        sales, _ = Area.objects.get_or_create(
            slug="vendas",
            defaults={
                "name": "Vendas",
                "is_default": True,
                "strategy": Strategy.ROUND_ROBIN,
                "reply_sla_minutes": 30,
                "ai_instructions": "Você é a assistente comercial. Seja cordial e objetiva.",
                "first_message_hint": "Agradeça o interesse e pergunte o melhor horário.",
            },
        )
        companies, _ = Area.objects.get_or_create(
            slug="empresas",
            defaults={
                "name": "Empresas",
                "strategy": Strategy.WEIGHTED,
                "ai_instructions": "Atendimento a empresas: pergunte o porte e o CNPJ.",
                "first_message_hint": "Apresente o plano corporativo.",
            },
        )
        people = [
            ("Carlos Souza", seller, sales, 1),
            ("Ana Lima", None, sales, 1),
            ("Bruno Costa", None, companies, 3),
            ("Duda Alves", None, companies, 1),
        ]
        for name, user, area, weight in people:
            person, created = Salesperson.objects.get_or_create(
                name=name, defaults={"user": user, "is_duty": name == "Duda Alves"}
            )
            if created:
                WorkingHours.objects.bulk_create(
                    WorkingHours(salesperson=person, weekday=d, starts=time(0), ends=time(0))
                    for d in range(7)
                )
            AreaMembership.objects.get_or_create(
                area=area, salesperson=person, defaults={"weight": weight}
            )
        if not RoutingRule.objects.exists():
            b2b = RoutingRule.objects.create(
                name="Campanhas B2B", position=1, target_area=companies
            )
            RuleCondition.objects.create(
                rule=b2b, field=ConditionField.UTM_CAMPAIGN, operator="contains", value="b2b"
            )
            corp = RoutingRule.objects.create(
                name="Formulário empresas", position=2, target_area=companies
            )
            RuleCondition.objects.create(
                rule=corp,
                field=ConditionField.LEAD_FIELD,
                field_name="empresa",
                operator="regex",
                value=".+",
            )

    def _ingest(self, source: str, name: str, parse: Any) -> None:
        text = (DEMO_DIR / name).read_text()
        stored = inbound_request_store(
            source=source,
            body=text,
            content_type="demo",
            headers={"X-Demo": "seed_demo"},
            remote_addr=None,
            events=parse(text),
        )
        # Processed here, so the demo is complete before any worker starts (replays are no-ops).
        pending = InboundEvent.objects.filter(
            request_id=stored.request_id, status=EventStatus.RECEIVED
        )
        for event_id in pending.values_list("pk", flat=True):
            event_process(event_id=event_id)

    @staticmethod
    def _kommo(text: str) -> list[ParsedEvent]:
        return split_kommo_body(parse_bracket_form(text, max_fields=settings.WEBHOOK_MAX_FIELDS))[1]

    @staticmethod
    def _rd(text: str) -> list[ParsedEvent]:
        return split_rdstation_body(json.loads(text))

    @staticmethod
    def _form(text: str) -> list[ParsedEvent]:
        return [ParsedEvent("forms.lead", make_key("forms", "demo", "website"), json.loads(text))]
