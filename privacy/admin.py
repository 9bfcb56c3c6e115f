from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from privacy.models import ErasureLog


@admin.register(ErasureLog)
class ErasureLogAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
