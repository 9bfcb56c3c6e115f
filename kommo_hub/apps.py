from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KommoHubConfig(AppConfig):
    name = "kommo_hub"
    verbose_name = _("Kommo Hub")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from kommo_hub.roles import groups_sync

        post_migrate.connect(groups_sync, dispatch_uid="kommo_hub.roles.groups_sync")
        # The agenda's home is Supabase: what its sync sees must reach Kommo and the reminders.
        # One explicit registration here, so scheduling/ never imports the coordinator.
        from kommo_hub.flows.scheduling import appointments_synced
        from scheduling.sync import sync_hooks

        if appointments_synced not in sync_hooks:
            sync_hooks.append(appointments_synced)
