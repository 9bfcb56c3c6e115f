"""The API for machines (n8n), under /api/."""

from django.urls import path, register_converter

from kommo_hub.api import scheduling


class IdConverter:
    """A database id: at most 18 digits, so it always fits a 64-bit column (no 500 on overflow)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

urlpatterns = [
    path("scheduling/slots/", scheduling.SlotsView.as_view(), name="api-scheduling-slots"),
    path(
        "scheduling/appointments/",
        scheduling.AppointmentsView.as_view(),
        name="api-scheduling-appointments",
    ),
    path(
        "scheduling/appointments/<id:pk>/",
        scheduling.AppointmentDetailView.as_view(),
        name="api-scheduling-appointment",
    ),
    path(
        "scheduling/appointments/<id:pk>/reschedule/",
        scheduling.AppointmentRescheduleView.as_view(),
        name="api-scheduling-appointment-reschedule",
    ),
    path(
        "scheduling/appointments/<id:pk>/cancel/",
        scheduling.AppointmentCancelView.as_view(),
        name="api-scheduling-appointment-cancel",
    ),
    path(
        "scheduling/appointments/<id:pk>/status/",
        scheduling.AppointmentStatusView.as_view(),
        name="api-scheduling-appointment-status",
    ),
]
