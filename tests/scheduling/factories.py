"""factory_boy factories for the scheduling app's rows."""

import uuid
from datetime import UTC, datetime, timedelta

import factory

from scheduling.models import AgendaBlock, Appointment, AppointmentStatus, Interaction
from tests.factories import LeadFactory
from tests.routing.factories import SalespersonFactory


class AppointmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appointment

    salesperson = factory.SubFactory(SalespersonFactory)
    lead = factory.SubFactory(LeadFactory)
    starts_at = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)  # 15:00 in São Paulo
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(minutes=30))
    status = AppointmentStatus.BOOKED
    source = "test"
    idempotency_key = factory.Sequence(lambda n: f"test:appointment:{n}")


class AgendaBlockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgendaBlock

    supabase_id = factory.LazyFunction(uuid.uuid4)
    salesperson = factory.SubFactory(SalespersonFactory)
    kind = AgendaBlock.Kind.BLOCKED
    starts_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(hours=1))


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    supabase_id = factory.LazyFunction(uuid.uuid4)
    kind = "whatsapp"
    text = "Lembrete enviado"
    happened_at = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
