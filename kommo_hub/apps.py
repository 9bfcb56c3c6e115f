from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KommoHubConfig(AppConfig):
    name = "kommo_hub"
    verbose_name = _("Kommo Hub")
    default_auto_field = "django.db.models.BigAutoField"
