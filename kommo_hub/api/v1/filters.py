"""Query filters of the /api/v1/ lists (django-filter). `from` / `to` are local dates
(America/Sao_Paulo), both days included."""

from datetime import date
from typing import Any

import django_filters  # type: ignore[import-untyped]
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from kommo_hub.reporting.selectors import period_bounds
from routing.models import AssignmentKind, AssignmentStatus

# Dates outside these are refused (400): they would overflow date-time arithmetic.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2999, 12, 31)
DATE_RANGE = [MinValueValidator(FIRST_DATE), MaxValueValidator(LAST_DATE)]

# Parameter names: `from` is a Python keyword, so the filters are named in the class dicts.
FROM, TO = "from", "to"


class PeriodFilter(django_filters.DateFilter):
    """A local date turned into the right bound of a date-time field."""

    def __init__(self, *, bound: str, **kwargs: Any) -> None:
        self.bound = bound
        super().__init__(validators=DATE_RANGE, **kwargs)

    def filter(self, qs: QuerySet[Any], value: date | None) -> QuerySet[Any]:
        if value is None:
            return qs
        since, until = period_bounds(value, value)
        if self.bound == FROM:
            return qs.filter(**{f"{self.field_name}__gte": since})
        return qs.filter(**{f"{self.field_name}__lt": until})


@extend_schema_field(OpenApiTypes.INT64)
class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number that fits a 64-bit column (a 400 otherwise, never a 500)."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=2**63 - 1, **kwargs)


def _period(field: str) -> dict[str, PeriodFilter]:
    return {
        FROM: PeriodFilter(field_name=field, bound=FROM, label=_("from (local date, included)")),
        TO: PeriodFilter(field_name=field, bound=TO, label=_("to (local date, included)")),
    }


class _LeadFilterBase(django_filters.FilterSet):
    area = IdFilter(field_name="current_area_id", label=_("area id"))
    salesperson = IdFilter(field_name="current_salesperson_id", label=_("salesperson id"))
    source = django_filters.CharFilter(field_name="source", label=_("source"))
    status = django_filters.ChoiceFilter(
        field_name="current_status",
        choices=AssignmentStatus.choices,
        label=_("status of the current assignment"),
    )


LeadFilter = type("LeadFilter", (_LeadFilterBase,), {**_period("created_at")})


class _AssignmentFilterBase(django_filters.FilterSet):
    area = IdFilter(field_name="area_id", label=_("area id"))
    salesperson = IdFilter(field_name="salesperson_id", label=_("salesperson id"))
    source = django_filters.CharFilter(field_name="lead__source", label=_("source"))
    status = django_filters.ChoiceFilter(choices=AssignmentStatus.choices, label=_("status"))
    kind = django_filters.ChoiceFilter(choices=AssignmentKind.choices, label=_("kind"))
    current = django_filters.BooleanFilter(field_name="is_current", label=_("current only"))


AssignmentFilter = type("AssignmentFilter", (_AssignmentFilterBase,), {**_period("decided_at")})
