"""Admin login throttling: too many failures for one username or from one address lock both out.

Counted in the shared cache (Redis in production), so the limit holds across web processes and
machines. While locked, even the right password is refused; a successful login clears the
username's count (the address's count runs out with its window, so logging in to one's own
account between guesses at others' does not help).
"""

import hashlib
import logging
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

_PREFIX = "login-throttle"


def _key(kind: str, value: str, what: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{_PREFIX}:{what}:{kind}:{digest}"


def client_address(request: HttpRequest | None) -> str:
    """The client's address; behind the TLS proxy, the one the proxy appended to X-Forwarded-For."""
    if request is None:
        return ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        return str(forwarded.split(",")[-1].strip())
    return str(request.META.get("REMOTE_ADDR", ""))


def _subjects(*, username: str, address: str) -> list[tuple[str, str]]:
    subjects = [("user", username.strip().lower())]
    if address:
        subjects.append(("ip", address))
    return subjects


def login_lockout_remaining(*, username: str, address: str) -> int:
    """Seconds until this username and address may try again (0: not locked)."""
    now = time.time()
    until = [
        cache.get(_key(kind, value, "lock"))
        for kind, value in _subjects(username=username, address=address)
    ]
    remaining = max((float(u) - now for u in until if u is not None), default=0.0)
    return math.ceil(remaining) if remaining > 0 else 0


def login_failure_record(*, username: str, address: str) -> None:
    window = settings.LOGIN_LOCKOUT_SECONDS
    for kind, value in _subjects(username=username, address=address):
        failures_key = _key(kind, value, "failures")
        cache.add(failures_key, 0, timeout=window)
        try:
            failures = cache.incr(failures_key)
        except ValueError:  # expired between add and incr
            cache.set(failures_key, 1, timeout=window)
            failures = 1
        if failures >= settings.LOGIN_MAX_FAILURES:
            cache.set(_key(kind, value, "lock"), time.time() + window, timeout=window)
            cache.delete(failures_key)
            logger.warning("admin login locked out", extra={"subject": kind, "failures": failures})


def login_success_record(*, username: str) -> None:
    cache.delete(_key("user", username.strip().lower(), "failures"))


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked_out": _("Too many failed login attempts. Try again in %(minutes)s minute(s)."),
    }

    def clean(self) -> dict[str, object]:
        username = str(self.cleaned_data.get("username") or "")
        address = client_address(self.request)
        remaining = login_lockout_remaining(username=username, address=address)
        if remaining:
            raise forms.ValidationError(
                self.error_messages["locked_out"],
                code="locked_out",
                params={"minutes": math.ceil(remaining / 60)},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login":
                login_failure_record(username=username, address=address)
            raise
        login_success_record(username=username)
        return cleaned
