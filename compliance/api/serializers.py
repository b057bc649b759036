"""Serializers of compliance's /v1 answers: the country rules (compliance.countries.CountryRuleData)."""
from __future__ import annotations

import phonenumbers
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from compliance.country_data import ALPHANUMERIC, DAYS, MESSAGE_TYPES, REGIONS, RISKS

_HHMM = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "08:00"}
_WINDOW = {"type": "object", "properties": {"start": _HHMM, "end": _HHMM}, "required": ["start", "end"],
           "additionalProperties": False}


@extend_schema_field({
    "type": "object", "nullable": True,
    "description": "The legal sending window in the recipient's local time, or null: messages of `applies_to` "
                   "types may go from `start` to `end` on `days`; a day in `day_overrides` has its own window; "
                   "`holidays` true: not on public holidays. `law` names the rule.",
    "properties": {
        "start": _HHMM, "end": _HHMM,
        "days": {"type": "array", "items": {"type": "string", "enum": list(DAYS)}},
        "holidays": {"type": "boolean"},
        "applies_to": {"type": "array", "items": {"type": "string", "enum": list(MESSAGE_TYPES)}},
        "law": {"type": "string"},
        "day_overrides": {"type": "object", "additionalProperties": _WINDOW},
    },
    "required": ["start", "end", "days", "holidays", "applies_to", "law", "day_overrides"],
    "additionalProperties": False,
})
class QuietHoursField(serializers.Field):
    def to_representation(self, value) -> dict | None:
        return None if value is None else value.as_json()


class CountryRuleSerializer(serializers.Serializer):
    iso = serializers.CharField(help_text="ISO 3166-1 alpha-2, upper case.")
    name = serializers.CharField()
    region = serializers.ChoiceField(choices=REGIONS)
    alphanumeric = serializers.ChoiceField(
        choices=ALPHANUMERIC, help_text="Alphanumeric sender IDs: `allowed`, `registration_required` (only "
                                        "registered ones) or `not_supported` (a number is sent from instead).")
    numeric_sender = serializers.BooleanField(help_text="Numbers may be the sender.")
    two_way = serializers.BooleanField(help_text="Recipients can reply.")
    registration = serializers.CharField(help_text="Template and registration requirements, in words.")
    template_required = serializers.BooleanField(help_text="Every message must match a registered template.")
    signature_required = serializers.CharField(
        allow_null=True, help_text="The brackets a signature must open each message in (China: 【】), or null.")
    marketing_opt_out_text = serializers.CharField(allow_null=True,
                                                   help_text="The opt-out text marketing must carry, or null.")
    marketing_opt_out_keyword = serializers.CharField(
        allow_null=True, help_text="A marketing body containing this (any case) meets the opt-out rule, or null.")
    quiet_hours = QuietHoursField()
    max_parts = serializers.IntegerField(min_value=1, help_text="The most segments a message may have.")
    risk = serializers.ChoiceField(choices=RISKS, help_text="SMS-pumping and premium-rate exposure.")
    approval_required = serializers.BooleanField(
        help_text="An account manager must approve your account before you send here.")
    source = serializers.CharField(help_text="Where the rule comes from: URLs or citations.")
    as_of = serializers.DateField(help_text="The date the source describes.")
    overridden = serializers.BooleanField(help_text="An account manager changed this country from the dataset.")
    changed = serializers.DateField(help_text="The last change: an account manager's, else the dataset's date.")
    dataset_version = serializers.CharField(help_text="The dataset version this country was last loaded from.")


class CountryRuleListSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The dataset version in force.")
    changed = serializers.DateField(allow_null=True, help_text="The latest change of any country's rules.")
    data = CountryRuleSerializer(many=True)


class GeoCountrySerializer(serializers.Serializer):
    country = serializers.CharField(help_text="ISO 3166-1 alpha-2, upper case.")
    name = serializers.CharField()
    risk = serializers.ChoiceField(choices=["low", "medium", "high", "unknown"],
                                   help_text="The rules' risk; `unknown`: the dataset has no rule for it.")
    approval_required = serializers.BooleanField(help_text="An account manager must approve you once you enable it.")
    enabled = serializers.BooleanField(help_text="Your choice, or the default (`default` true).")
    default = serializers.BooleanField(help_text="No choice made: home country and low-risk countries are on.")
    status = serializers.ChoiceField(choices=["allowed", "off", "pending_approval", "rejected"],
                                     help_text="Whether a send there is accepted now.")


class GeoPermissionsSerializer(serializers.Serializer):
    home_country = serializers.CharField()
    data = GeoCountrySerializer(many=True)


class StrictBooleanField(serializers.BooleanField):
    """true or false only: the schema says boolean, so 0, 1, "yes" are refused, not read as one."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class GeoChangeSerializer(serializers.Serializer):
    country = serializers.ChoiceField(choices=sorted(phonenumbers.SUPPORTED_REGIONS),
                                      help_text="ISO 3166-1 alpha-2, upper case.")
    enabled = StrictBooleanField()


class GeoPermissionsWriteSerializer(serializers.Serializer):
    countries = GeoChangeSerializer(many=True, max_length=300,
                                    help_text="The countries to change; the others stay as they are.")
