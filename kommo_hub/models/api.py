"""Keys that let machines (n8n) call the hub's API: `Authorization: Api-Key <key>`.

A key is `<prefix>.<secret>`. Only the prefix (to find the row) and the SHA-256 of the whole
key are stored; the key itself is shown once, when it is created, and never logged.
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


class ApiKey(models.Model):
    name = models.CharField(_("name"), max_length=100)
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
    def generate(cls, *, name: str) -> tuple["ApiKey", str]:
        """A new active key (saved) and its plain text, which is not stored anywhere."""
        prefix = secrets.token_hex(PREFIX_BYTES)
        key = f"{prefix}.{secrets.token_urlsafe(SECRET_BYTES)}"
        api_key = cls.objects.create(name=name, prefix=prefix, hashed_key=api_key_hash(key))
        return api_key, key

    def matches(self, key: str) -> bool:
        """Constant-time comparison of the key's hash with the stored one."""
        return hmac.compare_digest(api_key_hash(key), self.hashed_key)
