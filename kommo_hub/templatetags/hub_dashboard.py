"""`{% manager_dashboard %}`: the managers' charts on the admin home (see kommo_hub.dashboard)."""

from typing import Any

from django import template

from kommo_hub.dashboard import dashboard_context

register = template.Library()


@register.inclusion_tag("admin/kommo_hub/dashboard.html", takes_context=True)
def manager_dashboard(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    data = dashboard_context(request) if request is not None else None
    return {"dashboard": data, "request": request}
