from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotcontrolConfig(AppConfig):
    name = "botcontrol"
    verbose_name = _("Bot control")
    default_auto_field = "django.db.models.BigAutoField"
