"""/api/v1/: reporting (read-only)."""

from django.urls import path

from kommo_hub.api.v1 import views

urlpatterns = [
    path("leads/", views.LeadList.as_view(), name="api-v1-leads"),
    path("assignments/", views.AssignmentList.as_view(), name="api-v1-assignments"),
    path("reports/leads-per-day/", views.LeadsPerDay.as_view(), name="api-v1-leads-per-day"),
    path("reports/distribution/", views.Distribution.as_view(), name="api-v1-distribution"),
    path("reports/speed-to-lead/", views.SpeedToLead.as_view(), name="api-v1-speed-to-lead"),
    path("reports/bot-activity/", views.BotActivity.as_view(), name="api-v1-bot-activity"),
    path("reports/appointments/", views.Appointments.as_view(), name="api-v1-appointments"),
    path("reports/funnel/", views.Funnel.as_view(), name="api-v1-funnel"),
]
