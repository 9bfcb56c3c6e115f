"""factory_boy factories for the hub's rows."""

import factory

from kommo_hub.models import (
    ActionStatus,
    Contact,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    OutboundAction,
)


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    name = factory.Faker("name", locale="pt_BR")
    phone = factory.Sequence(lambda n: f"+55119{n:08d}")
    email = factory.Sequence(lambda n: f"cliente{n}@example.com")


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    contact = factory.SubFactory(ContactFactory)
    name = factory.SelfAttribute("contact.name")
    phone = factory.SelfAttribute("contact.phone")
    email = factory.SelfAttribute("contact.email")
    source = "website"


class InboundRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InboundRequest

    source = "kommo"
    body = ""


class InboundEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InboundEvent

    request = factory.SubFactory(InboundRequestFactory)
    source = "kommo"
    event_type = "kommo.leads.add"
    dedupe_key = factory.Sequence(lambda n: f"test:event:{n}")
    payload = factory.Sequence(lambda n: {"id": str(1000 + n), "name": f"Lead {n}"})
    status = EventStatus.RECEIVED


class OutboundActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundAction

    target = "n8n"
    action = "proactive_message"
    idempotency_key = factory.Sequence(lambda n: f"test:action:{n}")
    payload = factory.LazyAttribute(
        lambda o: {"action": o.action, "idempotency_key": o.idempotency_key}
    )
    status = ActionStatus.PENDING
