"""Keys that let machines (n8n) call the hub's API: `Authorization: Api-Key <key>`.

A key is `<prefix>.<secret>`. Only the prefix (to find the row) and the SHA-256 of the whole
key are stored; the key itself is shown once, when it is created, and never logged.

Each key has one scope: "scheduling" (n8n: the scheduling API, reads and writes) or "reporting"
(read-only: safe methods on the reporting API). A key never reaches the other API.
"""

import hashlib
import hmac
import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _

PREFIX_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeyScope(models.TextChoices):
    REPORTING = "reporting", _("reporting (read-only)")
    SCHEDULING = "scheduling", _("scheduling (n8n)")


class ApiKey(models.Model):
    name = models.CharField(_("name"), max_length=100)
    scope = models.CharField(
        _("scope"),
        max_length=16,
        choices=ApiKeyScope.choices,
        default=ApiKeyScope.REPORTING,
        help_text=_(
            "Reporting: read-only access to the reporting API. Scheduling: the scheduling API "
            "(n8n)."
        ),
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(_("key hash (SHA-256)"), max_length=64, editable=False)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def generate(cls, *, name: str, scope: str = ApiKeyScope.SCHEDULING) -> tuple["ApiKey", str]:
        """A new active key (saved) and its plain text, which is not stored anywhere.

        The scope defaults to scheduling: that is what every key made before scopes was (n8n).
        """
        api_key = cls(name=name, scope=scope)
        key = api_key.set_new_key()
        api_key.save()
        return api_key, key

    def set_new_key(self) -> str:
        """Give this (unsaved) key a fresh prefix and hash; returns the plain key."""
        self.prefix = secrets.token_hex(PREFIX_BYTES)
        key = f"{self.prefix}.{secrets.token_urlsafe(SECRET_BYTES)}"
        self.hashed_key = api_key_hash(key)
        return key

    def matches(self, key: str) -> bool:
        """Constant-time comparison of the key's hash with the stored one."""
        return hmac.compare_digest(api_key_hash(key), self.hashed_key)
