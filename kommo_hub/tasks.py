"""Background tasks: thin wrappers that hand an id to a service. Retry state lives on our rows."""

from django.tasks import task

from kommo_hub.intake.processing import event_process
from kommo_hub.outbox.delivery import action_deliver


@task()
def process_inbound_event(event_id: int) -> str:
    return event_process(event_id=event_id)


@task()
def deliver_outbound_action(action_id: int) -> str:
    return action_deliver(action_id=action_id)
