"""Scheduling API for n8n: free slots, booking, rescheduling, cancelling, done / no-show.

Thin views: serializers validate (400 naming the field), scheduling.slots answers reads,
scheduling.booking changes the agenda, kommo_hub.flows.scheduling tells Kommo. Times go out
as ISO-8601 in the hub's time zone (with its offset); times in may carry any offset (a naive
time is read in the hub's time zone).
"""

import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kommo_hub.api.auth import ApiKeyAuthentication, HasApiKey, HasSchedulingKey
from kommo_hub.api.parsers import SafeJSONParser
from kommo_hub.flows.scheduling import (
    appointment_booked_sync,
    appointment_cancelled_sync,
    appointment_changed_sync,
    appointment_status_sync,
)
from kommo_hub.models import Lead
from routing.models import Salesperson
from scheduling.booking import (
    AgendaError,
    AgendaUnavailable,
    AppointmentStateError,
    BookingError,
    BookingRejected,
    SlotTaken,
    appointment_book,
    appointment_cancel,
    appointment_mark,
    appointment_reschedule,
)
from scheduling.models import Appointment, AppointmentStatus
from scheduling.reminders import reminders_plan
from scheduling.slots import MAX_DAYS, Slot, SlotOffer, slots_for_lead, slots_for_salesperson

MAX_ID = 2**63 - 1
MIN_DURATION = 5
MAX_DURATION = 8 * 60
# Times further than this from now are refused (they also keep date arithmetic in range).
MAX_YEARS_AWAY = 5


# --- Fields ---------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.DATETIME)
class MomentField(serializers.Field):
    """An ISO-8601 date-time (any offset; naive = the hub's time zone) or, with
    `date_allowed`, a date (its local midnight)."""

    default_error_messages = {
        "invalid": _("Give an ISO-8601 date-time, e.g. 2026-11-26T15:00:00-03:00."),
        "invalid_or_date": _(
            "Give an ISO-8601 date-time or date, e.g. 2026-11-26T15:00:00-03:00 or 2026-11-26."
        ),
        "range": _("Too far from today."),
    }

    def __init__(self, *, date_allowed: bool = False, **kwargs: Any) -> None:
        self.date_allowed = date_allowed
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime.datetime:
        problem = "invalid_or_date" if self.date_allowed else "invalid"
        if not isinstance(data, str) or len(data) > 64:
            self.fail(problem)
        text = data.strip()
        try:
            moment = parse_datetime(text)
            day = parse_date(text) if moment is None and self.date_allowed else None
        except ValueError:
            self.fail(problem)
        if moment is not None and not self.date_allowed and len(text) <= len("2026-11-26"):
            self.fail(problem)  # a bare date is no meeting time (not its midnight)
        if moment is None:
            if day is None:
                self.fail(problem)
            moment = datetime.datetime.combine(day, datetime.time())
        now = timezone.now()
        if abs(moment.year - now.year) > MAX_YEARS_AWAY:
            self.fail("range")
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment.astimezone(datetime.UTC)

    def to_representation(self, value: datetime.datetime) -> str:
        return timezone.localtime(value).isoformat()


def _id_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def _duration_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=MIN_DURATION,
        max_value=MAX_DURATION,
        required=False,
        allow_null=True,
        help_text=_("Meeting length in minutes (default: the area's meeting length)."),
    )


# --- Serializers: requests --------------------------------------------------------------------


class SlotQuerySerializer(serializers.Serializer):
    salesperson = _id_field(required=False)
    lead = _id_field(required=False)
    from_ = MomentField(date_allowed=True, required=False)
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, required=False)
    duration = _duration_field()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("salesperson" in attrs) == ("lead" in attrs):
            raise serializers.ValidationError(
                {"salesperson": [_("Give either salesperson or lead (exactly one).")]}
            )
        return attrs


class BookSerializer(serializers.Serializer):
    lead = _id_field()
    salesperson = _id_field(
        required=False,
        allow_null=True,
        help_text=_("Default: the lead's current salesperson."),
    )
    start = MomentField()
    duration = _duration_field()
    idempotency_key = serializers.CharField(
        max_length=255,
        help_text=_("The same key books once: a retry answers the same appointment."),
    )
    title = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class RescheduleSerializer(serializers.Serializer):
    start = MomentField()
    duration = _duration_field()


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[
            (AppointmentStatus.DONE.value, AppointmentStatus.DONE.label),
            (AppointmentStatus.NO_SHOW.value, AppointmentStatus.NO_SHOW.label),
        ]
    )


# --- Serializers: answers (also document the schema) -------------------------------------------


class SalespersonBlockSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kommo_user_id = serializers.IntegerField(allow_null=True)


class SlotSerializer(serializers.Serializer):
    start = MomentField()
    end = MomentField()
    salesperson_id = serializers.IntegerField()


class SlotsAnswerSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    duration_minutes = serializers.IntegerField()
    salesperson = SalespersonBlockSerializer(
        allow_null=True, help_text=_("Whose slots were asked for (the lead's salesperson).")
    )
    fallback = serializers.BooleanField(
        help_text=_(
            "True: the lead's salesperson has nothing within the booking horizon, so "
            "these are the slots of the area's other salespeople."
        )
    )
    salespeople = SalespersonBlockSerializer(many=True)
    slots = SlotSerializer(many=True)


class AppointmentSerializer(serializers.ModelSerializer):
    start = MomentField(source="starts_at")
    end = MomentField(source="ends_at")
    duration_minutes = serializers.SerializerMethodField()
    salesperson = SalespersonBlockSerializer(allow_null=True)

    class Meta:
        model = Appointment
        fields = [
            "id",
            "supabase_id",
            "status",
            "lead",
            "salesperson",
            "start",
            "end",
            "duration_minutes",
            "title",
            "notes",
            "source",
            "idempotency_key",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_duration_minutes(self, appointment: Appointment) -> int:
        return int((appointment.ends_at - appointment.starts_at).total_seconds()) // 60


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class ConflictSerializer(ErrorSerializer):
    alternatives = SlotSerializer(many=True, required=False)


# --- Views ------------------------------------------------------------------------------------


def _block(person: Salesperson) -> dict[str, Any]:
    return {"id": person.pk, "name": person.name, "kommo_user_id": person.kommo_user_id}


def _slot(slot: Slot) -> dict[str, Any]:
    return SlotSerializer(slot).data


def _slots_answer(offer: SlotOffer) -> dict[str, Any]:
    return {
        "timezone": settings.TIME_ZONE,
        "duration_minutes": offer.rules.duration_minutes,
        "salesperson": _block(offer.owner) if offer.owner is not None else None,
        "fallback": offer.fallback,
        "salespeople": [_block(person) for person in offer.people.values()],
        "slots": [_slot(slot) for slot in offer.slots],
    }


def _error(error: BookingError) -> Response:
    if isinstance(error, BookingRejected) and error.field_name:
        return Response({error.field_name: [error.message]}, status=status.HTTP_400_BAD_REQUEST)
    body: dict[str, Any] = {"detail": error.message, "code": error.code}
    if isinstance(error, SlotTaken):
        body["alternatives"] = [_slot(slot) for slot in error.alternatives]
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(error, AppointmentStateError):
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(error, AgendaUnavailable):
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(error, AgendaError):
        return Response(body, status=status.HTTP_502_BAD_GATEWAY)
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def _not_found() -> Response:
    return Response(
        {"detail": _("No such appointment."), "code": "not_found"},
        status=status.HTTP_404_NOT_FOUND,
    )


# What follows each change, inside its transaction: Kommo note (+ meeting task) through the
# outbox, and the appointment's reminders brought in line with its new start or status.


def _booked(appointment: Appointment) -> None:
    appointment_booked_sync(appointment=appointment)
    reminders_plan(appointment=appointment)


def _moved(appointment: Appointment, previous_start: datetime.datetime) -> None:
    appointment_changed_sync(appointment=appointment, previous_start=previous_start)
    reminders_plan(appointment=appointment)


def _closed(appointment: Appointment) -> None:
    appointment_status_sync(appointment=appointment)
    reminders_plan(appointment=appointment)


class ApiKeyView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey, HasSchedulingKey]  # a reporting key gets 403
    parser_classes = [SafeJSONParser]


ERRORS = {
    400: OpenApiTypes.OBJECT,
    401: ErrorSerializer,
    409: ConflictSerializer,
    502: ErrorSerializer,
    503: ErrorSerializer,
}
SLOT_EXAMPLE = {"start": "2026-11-26T15:00:00-03:00", "end": "2026-11-26T15:30:00-03:00"}


class SlotsView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_slots",
        summary="Free slots of a salesperson, or of a lead's salesperson",
        parameters=[
            OpenApiParameter("salesperson", int, description="Salesperson id (or `lead`)."),
            OpenApiParameter(
                "lead",
                int,
                description="Lead id: its current salesperson's slots, or the area's other "
                "salespeople's when they have nothing within the booking horizon.",
            ),
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="ISO date-time or date; default now."
            ),
            OpenApiParameter(
                "days",
                int,
                description=f"How many days to look at (1–{MAX_DAYS}); "
                "default: the area's booking horizon.",
            ),
            OpenApiParameter(
                "duration", int, description="Meeting length in minutes; default: the area's."
            ),
        ],
        responses={200: SlotsAnswerSerializer, 400: OpenApiTypes.OBJECT, 401: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = SlotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        common = {
            "start": data.get("from"),
            "days": data.get("days"),
            "duration_minutes": data.get("duration"),
        }
        offer: SlotOffer | None
        if "salesperson" in data:
            person = Salesperson.objects.filter(pk=data["salesperson"]).first()
            if person is None:
                return Response({"salesperson": [_("Unknown salesperson.")]}, status=400)
            offer = slots_for_salesperson(salesperson=person, **common)
        else:
            lead = Lead.objects.filter(pk=data["lead"]).first()
            if lead is None:
                return Response({"lead": [_("Unknown lead.")]}, status=400)
            offer = slots_for_lead(lead=lead, **common)
            if offer is None:
                return Response(
                    {"lead": [_("The lead has no salesperson or area yet.")]}, status=400
                )
        return Response(_slots_answer(offer))


class AppointmentsView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_appointment_book",
        summary="Book a slot (idempotent on idempotency_key)",
        request=BookSerializer,
        responses={201: AppointmentSerializer, 200: AppointmentSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Book",
                request_only=True,
                value={
                    "lead": 42,
                    "start": "2026-11-26T15:00:00-03:00",
                    "idempotency_key": "n8n:exec-8812:book",
                    "title": "Demonstração",
                },
            ),
            OpenApiExample(
                "Slot taken",
                response_only=True,
                status_codes=["409"],
                value={
                    "detail": "This slot is not available.",
                    "code": "slot_taken",
                    "alternatives": [{**SLOT_EXAMPLE, "salesperson_id": 3}],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        body = BookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            result = appointment_book(
                lead_id=data["lead"],
                salesperson_id=data.get("salesperson"),
                start=data["start"],
                duration_minutes=data.get("duration"),
                idempotency_key=data["idempotency_key"],
                title=data["title"],
                notes=data["notes"],
                then=_booked,
            )
        except BookingError as error:
            return _error(error)
        return Response(
            AppointmentSerializer(result.appointment).data,
            status=status.HTTP_201_CREATED if result.changed else status.HTTP_200_OK,
        )


class AppointmentDetailView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_appointment_get",
        summary="One appointment",
        responses={200: AppointmentSerializer, 401: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        appointment = Appointment.objects.select_related("salesperson").filter(pk=pk).first()
        if appointment is None:
            return _not_found()
        return Response(AppointmentSerializer(appointment).data)


class AppointmentRescheduleView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_appointment_reschedule",
        summary="Move an appointment (same salesperson; the slot is checked again)",
        request=RescheduleSerializer,
        responses={200: AppointmentSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        body = RescheduleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            result = appointment_reschedule(
                appointment_id=pk,
                start=data["start"],
                duration_minutes=data.get("duration"),
                then=_moved,
            )
        except Appointment.DoesNotExist:
            return _not_found()
        except BookingError as error:
            return _error(error)
        return Response(AppointmentSerializer(result.appointment).data)


class AppointmentCancelView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_appointment_cancel",
        summary="Cancel an appointment (cancelling again changes nothing)",
        request=CancelSerializer,
        responses={200: AppointmentSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]

        def cancelled(appointment: Appointment) -> None:
            appointment_cancelled_sync(appointment=appointment, reason=reason)
            reminders_plan(appointment=appointment)

        try:
            result = appointment_cancel(
                appointment_id=pk,
                reason=reason,
                then=cancelled,
            )
        except Appointment.DoesNotExist:
            return _not_found()
        except BookingError as error:
            return _error(error)
        return Response(AppointmentSerializer(result.appointment).data)


class AppointmentStatusView(ApiKeyView):
    @extend_schema(
        operation_id="scheduling_appointment_status",
        summary="Mark a meeting that has started as done or no-show",
        request=StatusSerializer,
        responses={200: AppointmentSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, pk: int) -> Response:
        body = StatusSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            result = appointment_mark(
                appointment_id=pk,
                status=body.validated_data["status"],
                then=_closed,
            )
        except Appointment.DoesNotExist:
            return _not_found()
        except BookingError as error:
            return _error(error)
        return Response(AppointmentSerializer(result.appointment).data)
