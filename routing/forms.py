"""Forms of the routing admin's tools: simulate a lead, backtest the rules. Neither writes."""

from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from kommo_hub.models import Lead
from routing.models import RoutingRule

RECENT_LEADS = 50
BACKTEST_DEFAULT = 50
BACKTEST_MAX = 500

SAMPLE_FIELDS = (
    "source",
    "identifier",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "tags",
    "phone",
    "email",
    "name",
)


def lead_label(lead: Lead) -> str:
    who = lead.name or lead.phone or lead.email or "—"
    at = timezone.localtime(lead.created_at).strftime("%d/%m/%Y %H:%M")
    return f"#{lead.pk} {who} ({at})"


def parse_key_values(text: str) -> dict[str, str]:
    """`key=value` lines into a dict; blank lines are skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                gettext("Line %(n)d is not key=value: %(line)s") % {"n": number, "line": line},
                code="key_value",
            )
        values[key.strip()] = value.strip()
    return values


class SimulateForm(forms.Form):
    """Either a past lead or a sample of one, and when it arrives."""

    lead = forms.TypedChoiceField(
        label=_("recent lead"), coerce=int, required=False, empty_value=None
    )
    lead_id = forms.IntegerField(
        label=_("or lead id"),
        required=False,
        min_value=1,
        help_text=_("A past lead: the sample fields below are then ignored."),
    )
    source = forms.CharField(
        label=_("source"), required=False, help_text=_("e.g. website, rdstation, kommo")
    )
    identifier = forms.CharField(label=_("form / conversion identifier"), required=False)
    utm_source = forms.CharField(label="utm_source", required=False)
    utm_medium = forms.CharField(label="utm_medium", required=False)
    utm_campaign = forms.CharField(label="utm_campaign", required=False)
    utm_term = forms.CharField(label="utm_term", required=False)
    utm_content = forms.CharField(label="utm_content", required=False)
    tags = forms.CharField(label=_("tags"), required=False, help_text=_("Separate with commas."))
    phone = forms.CharField(label=_("phone"), required=False)
    email = forms.CharField(label=_("e-mail"), required=False)
    name = forms.CharField(label=_("name"), required=False)
    extra_fields = forms.CharField(
        label=_("other fields"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text=_("One per line, key=value, e.g. interesse=trabalhista."),
    )
    at = forms.DateTimeField(
        label=_("arriving at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Empty: now."),
    )

    lead_fields = ("lead", "lead_id")
    when_fields = ("at",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        recent = Lead.objects.order_by("-created_at", "-pk")[:RECENT_LEADS]
        field = self.fields["lead"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "---------"), *((lead.pk, lead_label(lead)) for lead in recent)]
        self.chosen_lead: Lead | None = None

    def sample_field_names(self) -> tuple[str, ...]:
        return (*SAMPLE_FIELDS, "extra_fields")

    def clean_extra_fields(self) -> dict[str, str]:
        return parse_key_values(self.cleaned_data.get("extra_fields") or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        lead_pk = cleaned.get("lead_id") or cleaned.get("lead")
        if lead_pk:
            self.chosen_lead = Lead.objects.select_related("contact").filter(pk=lead_pk).first()
            if self.chosen_lead is None:
                self.add_error("lead_id", gettext("There is no lead #%(id)s.") % {"id": lead_pk})
        return cleaned

    def sample(self) -> dict[str, Any]:
        """The facts' sample as routing.conditions.facts_from_sample reads it."""
        data = {name: self.cleaned_data.get(name) or "" for name in SAMPLE_FIELDS}
        data["fields"] = self.cleaned_data.get("extra_fields") or {}
        return data

    def when(self) -> datetime:
        at = self.cleaned_data.get("at")
        return at if isinstance(at, datetime) else timezone.now()


class BacktestForm(forms.Form):
    last = forms.IntegerField(
        label=_("last leads"),
        min_value=1,
        max_value=BACKTEST_MAX,
        initial=BACKTEST_DEFAULT,
        help_text=_("How many of the latest leads to replay (at most 500)."),
    )


class RoutingRuleForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = ["name", "position", "active", "target_area", "target_salesperson"]

    def validate_constraints(self) -> None:
        # RoutingRule.clean() already said "choose exactly one target"; the check constraint
        # would say it again in database words.
        if any(error.code == "target" for error in self.non_field_errors().as_data()):
            return
        super().validate_constraints()
