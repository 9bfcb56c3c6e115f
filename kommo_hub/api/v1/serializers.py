"""Serializers of /api/v1/: the lists' rows, the summaries' rows and the period parameters."""

from datetime import date, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from kommo_hub.models import Lead
from routing.models import Assignment

MAX_PERIOD_DAYS = 366


class LeadSerializer(serializers.ModelSerializer[Lead]):
    area_id = serializers.IntegerField(source="current_area_id", allow_null=True)
    area = serializers.CharField(source="current_area_name", allow_null=True)
    salesperson_id = serializers.IntegerField(source="current_salesperson_id", allow_null=True)
    salesperson = serializers.CharField(source="current_salesperson_name", allow_null=True)
    status = serializers.CharField(source="current_status", allow_null=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "kommo_lead_id",
            "name",
            "source",
            "source_identifier",
            "created_at",
            "area_id",
            "area",
            "salesperson_id",
            "salesperson",
            "status",
        ]
        read_only_fields = fields


class AssignmentSerializer(serializers.ModelSerializer[Assignment]):
    lead_name = serializers.CharField(source="lead.name", read_only=True)
    area = serializers.CharField(source="area.name", read_only=True, allow_null=True, default=None)
    salesperson = serializers.CharField(
        source="salesperson.name", read_only=True, allow_null=True, default=None
    )
    explanation = serializers.JSONField(read_only=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "lead_id",
            "lead_name",
            "kind",
            "status",
            "area_id",
            "area",
            "salesperson_id",
            "salesperson",
            "rule_name",
            "strategy",
            "deciding_step",
            "explanation",
            "is_current",
            "decided_at",
            "responded_at",
            "ended_at",
        ]
        read_only_fields = fields


class _PeriodBase(serializers.Serializer[dict[str, Any]]):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.localdate()
        end: date = attrs.get("to") or today
        start: date = attrs.get("from") or end - timedelta(days=29)
        if start > end:
            raise serializers.ValidationError({"from": [_("'from' is after 'to'.")]})
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise serializers.ValidationError(
                {
                    "from": [
                        _("The period is longer than %(days)s days.") % {"days": MAX_PERIOD_DAYS}
                    ]
                }
            )
        attrs["from"], attrs["to"] = start, end
        return attrs


def _date(label: str) -> serializers.DateField:
    from kommo_hub.api.v1.filters import DATE_RANGE

    return serializers.DateField(required=False, help_text=label, validators=DATE_RANGE)


PeriodSerializer = type(
    "PeriodSerializer",
    (_PeriodBase,),
    {
        "from": _date(
            "First local date (America/Sao_Paulo), included. Default: 29 days before 'to'."
        ),
        "to": _date("Last local date, included. Default: today."),
    },
)


class LeadsPerDayQuerySerializer(PeriodSerializer):  # type: ignore[valid-type,misc]
    area = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    salesperson = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    source = serializers.CharField(required=False, max_length=32)


# --- Summary rows (documentation of the responses, and their CSV columns) --------------------


class DayCountSerializer(serializers.Serializer[dict[str, Any]]):
    day = serializers.DateField()
    leads = serializers.IntegerField()


class DistributionRowSerializer(serializers.Serializer[dict[str, Any]]):
    area_id = serializers.IntegerField(allow_null=True)
    area = serializers.CharField(allow_blank=True)
    salesperson_id = serializers.IntegerField()
    salesperson = serializers.CharField()
    assigned = serializers.IntegerField()
    share = serializers.FloatField()
    target_share = serializers.FloatField(allow_null=True)


class SpeedRowSerializer(serializers.Serializer[dict[str, Any]]):
    group = serializers.ChoiceField(choices=["salesperson", "area"])
    id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_blank=True)
    assignments = serializers.IntegerField()
    replied = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    p90_seconds = serializers.FloatField(allow_null=True)


class PausesSerializer(serializers.Serializer[dict[str, Any]]):
    command = serializers.IntegerField()
    note = serializers.IntegerField()
    admin = serializers.IntegerField()
    api = serializers.IntegerField()
    takeover = serializers.IntegerField()
    handoff = serializers.IntegerField()
    expiry = serializers.IntegerField()


class BotActivitySerializer(serializers.Serializer[dict[str, Any]]):
    ai_replies = serializers.IntegerField()
    pauses = PausesSerializer()
    handoffs = serializers.IntegerField()
    reactivations = serializers.IntegerField()


class AppointmentRowSerializer(serializers.Serializer[dict[str, Any]]):
    salesperson_id = serializers.IntegerField()
    salesperson = serializers.CharField()
    booked = serializers.IntegerField()
    done = serializers.IntegerField()
    no_show = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    total = serializers.IntegerField()


class FunnelRowSerializer(serializers.Serializer[dict[str, Any]]):
    area_id = serializers.IntegerField(allow_null=True)
    area = serializers.CharField(allow_blank=True)
    source = serializers.CharField(allow_blank=True)  # type: ignore[assignment]
    leads = serializers.IntegerField()
    replied = serializers.IntegerField()
    booked = serializers.IntegerField()
    done = serializers.IntegerField()


def report_serializer(
    name: str, row: type[serializers.Serializer[Any]], *, many: bool = True
) -> type:
    """`{"from": date, "to": date, "results": rows}` (results is one object when not many)."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "from": serializers.DateField(),
            "to": serializers.DateField(),
            "results": row(many=True) if many else row(),
        },
    )
