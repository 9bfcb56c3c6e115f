"""Rule conditions: lead facts, matching every field with every operator, and validation."""

import pickle
import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from routing.calendar import BRAZILIAN_STATES
from routing.conditions import (
    DDD_STATES,
    CompiledRule,
    ConditionSpec,
    LeadFacts,
    compile_rules,
    condition_holds,
    condition_validate,
    facts_from_sample,
    lead_facts,
    phone_e164_or_error,
)
from routing.models import ConditionField, ConditionOperator, RoutingRule, RuleCondition
from tests.factories import ContactFactory, LeadFactory
from tests.routing.factories import AreaFactory, SalespersonFactory

F = ConditionField
Op = ConditionOperator


def facts(**overrides: Any) -> LeadFacts:
    values: dict[str, Any] = {
        "source": "website",
        "identifier": "form-contato",
        "utm": {
            "utm_source": "Google",
            "utm_medium": "cpc",
            "utm_campaign": "black-friday-2025",
            "utm_term": "consórcio imóvel",
            "utm_content": "banner-topo",
        },
        "tags": ("novo", "VIP"),
        "fields": {"interesse": "Consórcio Imóvel", "name": "Ana Souza"},
        "phone": "+5511987654321",
        "area_code": "11",
        "state": "SP",
    }
    values.update(overrides)
    return LeadFacts(**values)


def spec(field: str, operator: str, value: str, field_name: str = "") -> ConditionSpec:
    return ConditionSpec(field=field, field_name=field_name, operator=operator, value=value)


def holds(condition: ConditionSpec, lead: LeadFacts | None = None) -> bool:
    return condition_holds(condition, lead or facts())[0]


def errors_of(**kwargs: str) -> dict[str, list[str]]:
    values = {"field": F.SOURCE, "field_name": "", "operator": Op.EQUALS, "value": "x"}
    values.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        condition_validate(**values)
    return caught.value.message_dict


# --- The DDD table ------------------------------------------------------------------------------


def test_ddd_table_has_all_67_brazilian_area_codes() -> None:
    assert len(DDD_STATES) == 67
    assert all(len(code) == 2 and code.isdigit() for code in DDD_STATES)


def test_every_state_has_at_least_one_area_code() -> None:
    assert set(DDD_STATES.values()) == BRAZILIAN_STATES


def test_ddd_table_knows_the_big_cities() -> None:
    assert (DDD_STATES["11"], DDD_STATES["21"], DDD_STATES["61"]) == ("SP", "RJ", "DF")
    assert (DDD_STATES["31"], DDD_STATES["71"], DDD_STATES["92"]) == ("MG", "BA", "AM")


# --- Every field with every operator --------------------------------------------------------------

MATRIX = [
    # field, field_name, operator, value that holds, value that does not
    (F.SOURCE, "", Op.EQUALS, "website", "web"),
    (F.SOURCE, "", Op.CONTAINS, "site", "kommo"),
    (F.SOURCE, "", Op.REGEX, "^web", "^site"),
    (F.SOURCE, "", Op.ONE_OF, "kommo, website", "kommo, rdstation"),
    (F.IDENTIFIER, "", Op.EQUALS, "form-contato", "form"),
    (F.IDENTIFIER, "", Op.CONTAINS, "contato", "orcamento"),
    (F.IDENTIFIER, "", Op.REGEX, r"form-\w+", r"^contato"),
    (F.IDENTIFIER, "", Op.ONE_OF, "form-orcamento,form-contato", "form-orcamento"),
    (F.UTM_SOURCE, "", Op.EQUALS, "google", "goog"),
    (F.UTM_SOURCE, "", Op.CONTAINS, "oog", "facebook"),
    (F.UTM_SOURCE, "", Op.REGEX, "^g.*e$", "^f"),
    (F.UTM_SOURCE, "", Op.ONE_OF, "facebook, google", "facebook, instagram"),
    (F.UTM_MEDIUM, "", Op.EQUALS, "cpc", "cp"),
    (F.UTM_MEDIUM, "", Op.CONTAINS, "pc", "organic"),
    (F.UTM_MEDIUM, "", Op.REGEX, "^c", "^o"),
    (F.UTM_MEDIUM, "", Op.ONE_OF, "cpc, cpm", "organic"),
    (F.UTM_CAMPAIGN, "", Op.EQUALS, "black-friday-2025", "black-friday"),
    (F.UTM_CAMPAIGN, "", Op.CONTAINS, "friday", "natal"),
    (F.UTM_CAMPAIGN, "", Op.REGEX, r"-\d{4}$", r"-\d{5}$"),
    (F.UTM_CAMPAIGN, "", Op.ONE_OF, "natal, black-friday-2025", "natal"),
    (F.UTM_TERM, "", Op.EQUALS, "consórcio imóvel", "consórcio"),
    (F.UTM_TERM, "", Op.CONTAINS, "imóvel", "veículo"),
    (F.UTM_TERM, "", Op.REGEX, "cons.rcio", "^imóvel"),
    (F.UTM_TERM, "", Op.ONE_OF, "consórcio imóvel, consórcio auto", "consórcio auto"),
    (F.UTM_CONTENT, "", Op.EQUALS, "banner-topo", "banner"),
    (F.UTM_CONTENT, "", Op.CONTAINS, "topo", "rodape"),
    (F.UTM_CONTENT, "", Op.REGEX, "banner-(topo|rodape)", "video"),
    (F.UTM_CONTENT, "", Op.ONE_OF, "video, banner-topo", "video"),
    (F.TAG, "", Op.EQUALS, "vip", "vi"),
    (F.TAG, "", Op.CONTAINS, "ov", "premium"),
    (F.TAG, "", Op.REGEX, "^v.p$", "^premium$"),
    (F.TAG, "", Op.ONE_OF, "premium, vip", "premium, gold"),
    (F.LEAD_FIELD, "interesse", Op.EQUALS, "consórcio imóvel", "consórcio"),
    (F.LEAD_FIELD, "interesse", Op.CONTAINS, "imóvel", "auto"),
    (F.LEAD_FIELD, "interesse", Op.REGEX, r"im.vel$", r"^auto"),
    (F.LEAD_FIELD, "interesse", Op.ONE_OF, "consórcio auto, consórcio imóvel", "consórcio auto"),
    (F.AREA_CODE, "", Op.EQUALS, "11", "21"),
    (F.AREA_CODE, "", Op.CONTAINS, "1", "2"),
    (F.AREA_CODE, "", Op.REGEX, "^1[1-9]$", "^2"),
    (F.AREA_CODE, "", Op.ONE_OF, "11, 12, 13", "21, 22"),
    (F.STATE, "", Op.EQUALS, "sp", "rj"),
    (F.STATE, "", Op.CONTAINS, "S", "R"),
    (F.STATE, "", Op.REGEX, "^(SP|RJ)$", "^MG$"),
    (F.STATE, "", Op.ONE_OF, "RJ, SP", "RJ, MG"),
]


@pytest.mark.parametrize(("field", "field_name", "operator", "good", "bad"), MATRIX)
def test_each_field_and_operator_holds_for_a_matching_value_and_not_for_another(
    field: str, field_name: str, operator: str, good: str, bad: str
) -> None:
    assert holds(spec(field, operator, good, field_name)) is True
    assert holds(spec(field, operator, bad, field_name)) is False


def test_the_matrix_covers_every_field_with_every_operator() -> None:
    covered = {(field, operator) for field, _, operator, _, _ in MATRIX}
    assert covered == {(f, o) for f in F.values for o in Op.values}


@pytest.mark.parametrize(("field", "field_name", "operator", "good", "bad"), MATRIX)
def test_the_valid_values_of_the_matrix_pass_validation(
    field: str, field_name: str, operator: str, good: str, bad: str
) -> None:
    condition_validate(field=field, field_name=field_name, operator=operator, value=good)


def test_comparison_ignores_case_and_surrounding_whitespace() -> None:
    lead = facts(source="  WebSite ")
    assert holds(spec(F.SOURCE, Op.EQUALS, " website  "), lead) is True
    assert holds(spec(F.SOURCE, Op.ONE_OF, " KOMMO ,  WEBSITE "), lead) is True
    assert holds(spec(F.SOURCE, Op.CONTAINS, " SITE "), lead) is True


def test_accents_are_significant() -> None:
    assert holds(spec(F.LEAD_FIELD, Op.EQUALS, "Consorcio Imovel", "interesse")) is False
    assert holds(spec(F.LEAD_FIELD, Op.EQUALS, "CONSÓRCIO IMÓVEL", "interesse")) is True


def test_equals_needs_the_whole_value() -> None:
    assert holds(spec(F.UTM_SOURCE, Op.EQUALS, "google ads"), facts()) is False


def test_one_of_ignores_empty_items() -> None:
    assert holds(spec(F.SOURCE, Op.ONE_OF, ",,website,")) is True
    assert holds(spec(F.SOURCE, Op.ONE_OF, ", ,"), facts(source="")) is False


def test_tag_condition_holds_when_any_tag_matches() -> None:
    lead = facts(tags=("a", "b", "vip"))
    assert condition_holds(spec(F.TAG, Op.EQUALS, "VIP"), lead) == (True, "tags: a, b, vip")
    assert condition_holds(spec(F.TAG, Op.EQUALS, "c"), lead) == (False, "tags: a, b, vip")


def test_tag_condition_never_holds_without_tags() -> None:
    assert condition_holds(spec(F.TAG, Op.REGEX, ".*"), facts(tags=())) == (False, "no tags")


@pytest.mark.parametrize("operator", Op.values)
def test_a_missing_lead_field_never_matches(operator: str) -> None:
    condition = spec(F.LEAD_FIELD, operator, ".*", "cidade")
    assert condition_holds(condition, facts()) == (False, "no such field")


def test_the_lead_field_name_is_found_regardless_of_case() -> None:
    condition = spec(F.LEAD_FIELD, Op.EQUALS, "consórcio imóvel", " Interesse ")
    assert holds(condition) is True


@pytest.mark.parametrize("operator", Op.values)
def test_an_empty_subject_matches_nothing(operator: str) -> None:
    lead = facts(source="  ", utm={}, area_code="", state="")
    for field in (F.SOURCE, F.UTM_SOURCE, F.AREA_CODE, F.STATE):
        assert condition_holds(spec(field, operator, ".*"), lead) == (False, "empty")


def test_a_foreign_phone_has_no_area_code_or_state() -> None:
    lead = facts_from_sample({"phone": "+1 415 555 2671"})
    assert (lead.phone, lead.area_code, lead.state) == ("+14155552671", "", "")
    assert holds(spec(F.STATE, Op.REGEX, "."), lead) is False


def test_regex_sees_only_the_first_thousand_characters_of_a_huge_value() -> None:
    huge = "a" * 999 + "b" + "TAIL" + "c" * 1_000_000
    lead = facts(fields={"notes": huge})
    started = time.perf_counter()
    seen_b = condition_holds(spec(F.LEAD_FIELD, Op.REGEX, "ab", "notes"), lead)
    seen_tail = condition_holds(spec(F.LEAD_FIELD, Op.REGEX, "TAIL", "notes"), lead)
    elapsed = time.perf_counter() - started
    assert seen_b == (True, "'" + "a" * 80 + "…'")
    assert seen_tail[0] is False
    assert elapsed < 0.5


def test_regex_ignores_case() -> None:
    assert holds(spec(F.UTM_SOURCE, Op.REGEX, "^GOOGLE$")) is True


def test_an_invalid_regex_saved_around_validation_does_not_break_matching() -> None:
    assert condition_holds(spec(F.SOURCE, Op.REGEX, "("), facts()) == (False, "'website'")


# --- Rules ---------------------------------------------------------------------------------------


def rule(*conditions: ConditionSpec) -> CompiledRule:
    return CompiledRule(
        id=1,
        name="Google VIP",
        position=0,
        target_area_id=7,
        target_salesperson_id=None,
        conditions=conditions,
    )


def test_a_rule_matches_when_all_conditions_hold_and_explains_each() -> None:
    matched = rule(spec(F.UTM_SOURCE, Op.EQUALS, "google"), spec(F.TAG, Op.ONE_OF, "vip, premium"))
    assert matched.matches(facts(tags=("a", "vip"))) == (
        True,
        [
            "utm_source equals 'google': yes ('Google')",
            "tag one of 'vip, premium': yes (tags: a, vip)",
        ],
    )


def test_a_rule_stops_at_the_first_failing_condition() -> None:
    failing = rule(
        spec(F.UTM_SOURCE, Op.EQUALS, "google"),
        spec(F.TAG, Op.ONE_OF, "vip, premium"),
        spec(F.STATE, Op.EQUALS, "SP"),
    )
    assert failing.matches(facts(tags=("a", "b"))) == (
        False,
        [
            "utm_source equals 'google': yes ('Google')",
            "tag one of 'vip, premium': no (tags: a, b)",
        ],
    )


def test_explanations_name_lead_fields_and_show_missing_values() -> None:
    checked = rule(
        spec(F.LEAD_FIELD, Op.CONTAINS, "imóvel", "interesse"),
        spec(F.UTM_TERM, Op.REGEX, "^consórcio"),
        spec(F.SOURCE, Op.EQUALS, "kommo"),
    )
    assert checked.matches(facts(utm={"utm_term": "consórcio imóvel"}, source="")) == (
        False,
        [
            "interesse contains 'imóvel': yes ('Consórcio Imóvel')",
            "utm_term matches '^consórcio': yes ('consórcio imóvel')",
            "source equals 'kommo': no (empty)",
        ],
    )


def test_a_rule_without_conditions_matches_every_lead() -> None:
    assert rule().matches(facts()) == (True, [])
    assert rule().matches(facts_from_sample({})) == (True, [])


def test_a_compiled_rule_survives_pickling() -> None:
    compiled = rule(spec(F.LEAD_FIELD, Op.EQUALS, "x", "interesse"))
    assert pickle.loads(pickle.dumps(compiled)) == compiled  # noqa: S301


@pytest.mark.django_db
def test_compile_rules_copies_rules_and_conditions_in_two_queries(
    django_assert_num_queries: Any,
) -> None:
    area = AreaFactory()
    person = SalespersonFactory()
    google = RoutingRule.objects.create(name="Google", position=1, target_area=area)
    RuleCondition.objects.create(
        rule=google, field=F.UTM_SOURCE, operator=Op.EQUALS, value="google"
    )
    RuleCondition.objects.create(
        rule=google, field=F.LEAD_FIELD, field_name="interesse", operator=Op.CONTAINS, value="auto"
    )
    anyone = RoutingRule.objects.create(name="Anyone", position=2, target_salesperson=person)

    with django_assert_num_queries(2):
        compiled = compile_rules(
            RoutingRule.objects.order_by("position").prefetch_related("conditions")
        )

    assert compiled == [
        CompiledRule(
            id=google.pk,
            name="Google",
            position=1,
            target_area_id=area.pk,
            target_salesperson_id=None,
            conditions=(
                ConditionSpec(field="utm_source", field_name="", operator="equals", value="google"),
                ConditionSpec(
                    field="field", field_name="interesse", operator="contains", value="auto"
                ),
            ),
        ),
        CompiledRule(
            id=anyone.pk,
            name="Anyone",
            position=2,
            target_area_id=None,
            target_salesperson_id=person.pk,
            conditions=(),
        ),
    ]
    with django_assert_num_queries(0):
        lead = facts(fields={"interesse": "Consórcio Auto"})
        assert [r.matches(lead)[0] for r in compiled] == [True, True]


# --- Facts ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_lead_facts_reads_every_part_of_the_lead(django_assert_num_queries: Any) -> None:
    created = LeadFactory(
        phone="+5521987654321",
        source="rdstation",
        source_identifier="landing-consorcio",
        utm={"UTM_Source": " Google ", "utm_medium": "cpc", "utm_term": ""},
        fields={"interesse": ["imóvel", "auto"], "idade": 42, "vazio": None},
        tags=["vip", " ", "novo"],
        name="Ana Souza",
        email="ana@example.com",
    )
    lead = type(created).objects.select_related("contact").get(pk=created.pk)

    with django_assert_num_queries(0):
        got = lead_facts(lead)

    assert got == LeadFacts(
        source="rdstation",
        identifier="landing-consorcio",
        utm={"utm_source": "Google", "utm_medium": "cpc"},
        tags=("vip", "novo"),
        fields={
            "interesse": "imóvel, auto",
            "idade": "42",
            "vazio": "",
            "name": "Ana Souza",
            "email": "ana@example.com",
        },
        phone="+5521987654321",
        area_code="21",
        state="RJ",
    )


@pytest.mark.django_db
def test_lead_facts_falls_back_to_the_contacts_phone() -> None:
    contact = ContactFactory(phone="+5561987654321")
    lead = LeadFactory(contact=contact, phone="")
    got = lead_facts(lead)
    assert (got.phone, got.area_code, got.state) == ("+5561987654321", "61", "DF")


@pytest.mark.django_db
def test_lead_facts_without_phone_or_contact_has_no_area_code(
    django_assert_num_queries: Any,
) -> None:
    lead = LeadFactory(contact=None, phone="", name="", email="")
    with django_assert_num_queries(0):
        got = lead_facts(lead)
    assert (got.phone, got.area_code, got.state, got.fields) == ("", "", "", {})


@pytest.mark.django_db
def test_lead_facts_keeps_a_form_name_when_the_lead_has_none() -> None:
    lead = LeadFactory(contact=None, phone="", name="", email="", fields={"name": "Bia"})
    assert lead_facts(lead).fields == {"name": "Bia"}


def test_facts_from_sample_normalizes_the_phone_and_reads_every_key() -> None:
    got = facts_from_sample(
        {
            "source": "website",
            "identifier": "form-contato",
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "",
            "utm_term": "consórcio",
            "utm_content": "banner",
            "tags": "vip, novo,, ",
            "fields": {"interesse": "auto"},
            "phone": "(11) 98765-4321",
            "email": "ana@example.com",
            "name": "Ana",
        }
    )
    assert got == LeadFacts(
        source="website",
        identifier="form-contato",
        utm={
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_term": "consórcio",
            "utm_content": "banner",
        },
        tags=("vip", "novo"),
        fields={"interesse": "auto", "name": "Ana", "email": "ana@example.com"},
        phone="+5511987654321",
        area_code="11",
        state="SP",
    )


def test_facts_from_sample_takes_tags_as_a_list() -> None:
    assert facts_from_sample({"tags": ["vip", "", "novo"]}).tags == ("vip", "novo")


def test_facts_from_sample_with_an_invalid_phone_has_no_phone() -> None:
    got = facts_from_sample({"phone": "123"})
    assert (got.phone, got.area_code, got.state) == ("", "", "")


def test_facts_from_an_empty_sample_are_empty() -> None:
    assert facts_from_sample({}) == LeadFacts(
        source="",
        identifier="",
        utm={},
        tags=(),
        fields={},
        phone="",
        area_code="",
        state="",
    )


# --- Validation ----------------------------------------------------------------------------------


def test_validation_refuses_an_unknown_field() -> None:
    assert errors_of(field="cidade") == {"field": ["Unknown field 'cidade'"]}


def test_validation_refuses_an_unknown_operator() -> None:
    assert errors_of(operator="starts") == {"operator": ["Unknown operator 'starts'"]}


def test_validation_reports_unknown_field_and_operator_together() -> None:
    assert errors_of(field="cidade", operator="starts", value="") == {
        "field": ["Unknown field 'cidade'"],
        "operator": ["Unknown operator 'starts'"],
    }


def test_validation_needs_a_field_name_for_a_lead_field() -> None:
    assert errors_of(field=F.LEAD_FIELD, field_name=" ") == {
        "field_name": ["Give the name of the lead field."]
    }


@pytest.mark.parametrize("name", ["bad/name", "a" * 121, "x;drop"])
def test_validation_refuses_an_invalid_field_name(name: str) -> None:
    assert errors_of(field=F.LEAD_FIELD, field_name=name) == {
        "field_name": [
            f"Invalid field name '{name[:80] + '…' if len(name) > 80 else name}': "
            "use 1 to 120 letters, digits, spaces, _ - or ."
        ]
    }


@pytest.mark.parametrize("name", ["interesse", "Área de interesse", "form.campo_1-b", "a" * 120])
def test_validation_accepts_field_names_of_letters_digits_and_punctuation(name: str) -> None:
    condition_validate(field=F.LEAD_FIELD, field_name=name, operator=Op.EQUALS, value="x")


def test_validation_refuses_a_field_name_for_another_field() -> None:
    assert errors_of(field=F.UTM_SOURCE, field_name="interesse") == {
        "field_name": ["Only a lead field condition takes a field name."]
    }


@pytest.mark.parametrize("value", ["", "   "])
def test_validation_refuses_an_empty_value(value: str) -> None:
    assert errors_of(value=value) == {"value": ["Give a value."]}


def test_validation_refuses_an_invalid_regex_with_the_reason() -> None:
    assert errors_of(operator=Op.REGEX, value="(abc") == {
        "value": ["Invalid regular expression: missing ), unterminated subpattern at position 0"]
    }


def test_validation_refuses_a_regex_longer_than_300_characters() -> None:
    condition_validate(field=F.SOURCE, field_name="", operator=Op.REGEX, value="a" * 300)
    assert errors_of(operator=Op.REGEX, value="a" * 301) == {
        "value": ["The regular expression is too long (at most 300 characters)."]
    }


def test_validation_refuses_an_unknown_area_code() -> None:
    assert errors_of(field=F.AREA_CODE, value="10") == {"value": ["Unknown area code '10'"]}


def test_validation_refuses_an_unknown_area_code_in_a_list() -> None:
    assert errors_of(field=F.AREA_CODE, operator=Op.ONE_OF, value="11, 20") == {
        "value": ["Unknown area code '20'"]
    }


def test_validation_refuses_an_unknown_state() -> None:
    assert errors_of(field=F.STATE, value="XX") == {"value": ["Unknown state 'XX'"]}
    assert errors_of(field=F.STATE, operator=Op.ONE_OF, value="sp, zz") == {
        "value": ["Unknown state 'zz'"]
    }


def test_validation_lets_contains_and_regex_use_partial_area_codes() -> None:
    condition_validate(field=F.AREA_CODE, field_name="", operator=Op.CONTAINS, value="1")
    condition_validate(field=F.STATE, field_name="", operator=Op.REGEX, value="^S")


def test_validation_refuses_a_list_without_items() -> None:
    assert errors_of(operator=Op.ONE_OF, value=" , ,") == {
        "value": ["List at least one value, separated by commas."]
    }


def test_rule_condition_full_clean_refuses_an_invalid_regex() -> None:
    condition = RuleCondition(field=F.UTM_SOURCE, operator=Op.REGEX, value="[a-")
    with pytest.raises(ValidationError) as caught:
        condition.full_clean(exclude=["rule"])
    assert caught.value.message_dict == {
        "value": ["Invalid regular expression: unterminated character set at position 0"]
    }


def test_rule_condition_full_clean_accepts_a_valid_condition() -> None:
    condition = RuleCondition(field=F.AREA_CODE, operator=Op.ONE_OF, value="11, 21")
    condition.full_clean(exclude=["rule"])


# --- Phones --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(11) 98765-4321", "+5511987654321"),
        ("+55 21 98765-4321", "+5521987654321"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_phone_e164_or_error_normalizes_valid_numbers(raw: str, expected: str) -> None:
    assert phone_e164_or_error(raw) == expected


@pytest.mark.parametrize("raw", ["123", "abc", ""])
def test_phone_e164_or_error_names_an_invalid_number(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        phone_e164_or_error(raw)
    assert caught.value.messages == [f"Not a valid phone number: {raw}"]
