"""Error reports (the debug page, error e-mails) with every secret setting hidden.

Django hides names containing API, TOKEN, KEY, SECRET, PASS or SIGNATURE; connection URLs carry
passwords too (REDIS_URL, DATABASE_URL, a cache's LOCATION), so those are hidden as well.
"""

import re

from django.views.debug import SafeExceptionReporterFilter


class HubExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|LOCATION|DSN", flags=re.IGNORECASE
    )
