from django.contrib import admin

from kommo_hub.admin import ReadOnlyAdmin
from privacy.models import ErasureLog


@admin.register(ErasureLog)
class ErasureLogAdmin(ReadOnlyAdmin):
    """The proof of each erasure: read-only, for managers."""

    list_display = ["erased_at", "lead_id", "action", "trigger", "reason", "requested_by"]
    list_filter = ["action", "trigger"]
    search_fields = ["=lead_id", "reason", "requested_by"]
    date_hierarchy = "erased_at"
    readonly_fields = [
        "lead_id",
        "action",
        "trigger",
        "reason",
        "requested_by",
        "rows",
        "external",
        "erased_at",
    ]
