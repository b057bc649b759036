"""Serializers of billing's /v1 answers: money as string decimals (billing.money.money_text), never floats."""
from __future__ import annotations

import hashlib
import hmac

import phonenumbers
from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from billing.models import PriceMessageType
from billing.money import money_text


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{4,6}$"})
class MoneyField(serializers.Field):
    """An amount as a string decimal with 4 to 6 places ("-0.0158"), as every answer shows money."""

    def to_representation(self, value) -> str | None:
        return money_text(value)


class BalanceSerializer(serializers.Serializer):
    available = MoneyField(help_text="What sends may still hold: balance - reserved + credit_limit.")
    balance = MoneyField(help_text="Money on the account: top-ups and adjustments less what was charged.")
    reserved = MoneyField(help_text="Held for messages accepted and not yet sent or released.")
    credit_limit = MoneyField(help_text="How far below zero the balance may go (postpaid accounts); 0.0000 prepaid.")
    currency = serializers.CharField(help_text="ISO 4217: every price and amount of the account is in it.")


def transaction_id(pk: int) -> str:
    """A ledger entry's public id: `txn_` and a keyed hash of its key. Entries are append-only (a trigger refuses
    UPDATE), so they get no stored random id; the hash hides how many entries exist, and no endpoint looks one
    up by it."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"ledger:{pk}".encode(), hashlib.sha256).hexdigest()
    return f"txn_{digest[:24]}"


class TransactionSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField(help_text="`txn_…`.")
    kind = serializers.CharField(help_text="topup, hold, capture, release, adjustment, rental or lease.")
    amount = MoneyField(source="balance_delta", help_text="Change of the balance: + a top-up, - a capture.")
    reserved_delta = MoneyField(help_text="Change of what is held: + a hold, - its capture or release.")
    currency = serializers.CharField()
    reason = serializers.CharField(help_text="Why, for top-ups and adjustments; else empty.")
    message_id = serializers.SerializerMethodField(help_text="The message (`msg_…`) a capture or release "
                                                             "settles; else null.")
    messages = serializers.IntegerField(help_text="How many messages a hold covers (one per accept).")
    created_at = serializers.DateTimeField()

    def get_id(self, entry) -> str:
        return transaction_id(entry.pk)

    def get_message_id(self, entry) -> str | None:
        return self.context.get("message_ids", {}).get(entry.message_id)


class PriceSerializer(serializers.Serializer):
    prefix = serializers.CharField(help_text="E.164 digits without '+', for a price by prefix; else empty.")
    country = serializers.CharField(help_text="ISO 3166 alpha-2, for a price by country; else empty.")
    operator = serializers.CharField(help_text="MCC/MNC; empty: any operator.")
    message_type = serializers.CharField(help_text="otp, transactional, marketing; empty: all types.")
    price = MoneyField(help_text="Per segment.")
    currency = serializers.CharField()
    effective_from = serializers.DateField()
    min_monthly_volume = serializers.IntegerField(help_text="Volume tier: from this many segments a month.")
    own = serializers.SerializerMethodField(help_text="true: your own price list's; false: the default list's.")

    def get_own(self, price) -> bool:
        return price.tenant_id is not None


class NumberPriceListedSerializer(serializers.Serializer):
    number_type = serializers.CharField(help_text="local, mobile, toll_free, short_code or virtual.")
    country = serializers.CharField(help_text="ISO 3166 alpha-2.")
    monthly_rental = MoneyField(help_text="A rented number, per month (charged per day held).")
    lease_per_hour = MoneyField(help_text="A leased (temporary) number, per hour (charged to the second).")
    currency = serializers.CharField()
    effective_from = serializers.DateField()
    own = serializers.SerializerMethodField(help_text="true: your own price list's; false: the default list's.")

    def get_own(self, price) -> bool:
        return price.tenant_id is not None


class PricingSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="Your account's currency: every price below is in it.")
    messages = PriceSerializer(many=True, help_text="Per-segment message prices.")
    numbers = NumberPriceListedSerializer(many=True, help_text="Number rental and lease prices per type and country.")


class PricingQuerySerializer(serializers.Serializer):
    country = serializers.CharField(required=False, allow_blank=True, max_length=2, min_length=2,
                                    help_text="ISO 3166 alpha-2 (GB): that country's prices only.")

    def validate_country(self, value: str) -> str:
        value = value.upper()
        if value and not (value.isascii() and value.isalpha()
                          and phonenumbers.country_code_for_region(value)):
            raise ValidationError([ErrorDetail(f"{value!r} is not a country code we know (ISO 3166 alpha-2, "
                                               "e.g. GB).", code="invalid_country")])
        return value


class SavingsRequestSerializer(serializers.Serializer):
    """POST /v1/billing/savings's body, for the schema: billing/savings.py checks it (422 with its own codes), so
    a volume or type that cannot be estimated answers the same codes from the API and the portal."""

    schema_rules = {"properties": {"volumes": {"minProperties": 1, "maxProperties": 250}}}

    volumes = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=1_000_000_000), required=False,
        help_text="SMS a month per country: ISO 3166 alpha-2 code -> a whole number (0 to 1,000,000,000). Leave "
                  "it out for your own last 30 days by country.")
    # The message types with their labels, as the Message's: the schema's one MessageTypeEnum.
    message_type = serializers.ChoiceField(choices=[c for c in PriceMessageType.choices if c[0]], required=False,
                                           help_text="The type the volumes are priced as; default transactional. "
                                                     "Without `volumes`: only your messages of this type.")


PERCENT = {"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d$", "nullable": True}


@extend_schema_field(PERCENT)
class PercentField(serializers.Field):
    """A percentage with one place, as a string ("23.5"); null when there is nothing to compare with."""

    def to_representation(self, value) -> str | None:
        return None if value is None else format(value, "f")


class SavingsLineSerializer(serializers.Serializer):
    country = serializers.CharField(help_text="ISO 3166 alpha-2.")
    message_type = serializers.CharField()
    volume = serializers.IntegerField(help_text="SMS (segments).")
    comparable = serializers.BooleanField(help_text="false: one side has no price (see `reason`); left out of "
                                                    "the totals.")
    reason = serializers.CharField(help_text="Why it is not comparable; empty when it is.")
    our_unit = MoneyField(allow_null=True, help_text="Our price per SMS; null when we have none.")
    direct_unit = MoneyField(allow_null=True, help_text="The direct operators' reference list price per SMS.")
    our_cost = MoneyField(allow_null=True)
    direct_cost = MoneyField(allow_null=True)
    saving = MoneyField(allow_null=True, help_text="direct_cost - our_cost; null when not comparable.")
    saving_percent = PercentField(help_text="saving as a percentage of direct_cost.")


class SavingsSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217: every amount of the answer.")
    message_type = serializers.CharField(allow_null=True, help_text="null: your own mix of types (no body).")
    source = serializers.CharField(help_text="`volumes` (the body's) or `usage` (your last 30 days).")
    start = serializers.DateField(source="start", allow_null=True, help_text="With `usage`: the first day (UTC).")
    end = serializers.DateField(source="end", allow_null=True, help_text="With `usage`: the last day, included.")
    our_cost = MoneyField(help_text="What the comparable countries cost at your prices.")
    direct_cost = MoneyField(help_text="What they cost at the direct operators' reference list prices.")
    saving = MoneyField(help_text="direct_cost - our_cost (negative: direct is cheaper).")
    saving_percent = PercentField(help_text="saving as a percentage of direct_cost; null when nothing compares.")
    countries = SavingsLineSerializer(many=True, source="lines")
    not_comparable = serializers.SerializerMethodField(help_text="The countries left out of the totals.")

    def get_fields(self):
        fields = super().get_fields()
        return {{"start": "from", "end": "to"}.get(name, name): field for name, field in fields.items()}

    def get_not_comparable(self, estimate) -> list[str]:
        return sorted({line.country for line in estimate.not_comparable})



@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^-?\d+\.\d{2}$"})
class CentsField(serializers.Field):
    """An invoice amount as a string decimal with 2 places ("12.34"): invoices round to cents."""

    def to_representation(self, value) -> str:
        return f"{value:.2f}"


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d\.\d{4}$"})
class TaxRateField(serializers.Field):
    """A tax rate as a string decimal with 4 places ("0.2000" is 20 %)."""

    def to_representation(self, value) -> str:
        return f"{value:.4f}"


class InvoiceLineSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="The line's number, 1 to n.")
    kind = serializers.CharField(help_text="messages, rental, lease or adjustment.")
    description = serializers.CharField()
    country = serializers.CharField(help_text="Messages: the recipients' country (ISO 3166 alpha-2); else empty.")
    message_type = serializers.CharField(help_text="Messages: otp, transactional or marketing; else empty.")
    quantity = serializers.IntegerField(help_text="Messages: how many; rental and leases: how many charges.")
    segments = serializers.IntegerField(help_text="Messages: their segments; else 0.")
    unit_price = MoneyField(allow_null=True, help_text="Messages: the amount per segment before rounding; else null.")
    amount = CentsField()


class CreditNoteLineSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    description = serializers.CharField()
    amount = CentsField(help_text="Negative: less to pay.")


class CreditNoteSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="`crn_…`.")
    number = serializers.CharField(help_text="Its own number, e.g. CN-2026-000004.")
    reason = serializers.CharField()
    currency = serializers.CharField()
    subtotal = CentsField()
    tax_rate = TaxRateField()
    tax = CentsField()
    total = CentsField(help_text="Negative: credited to you.")
    issued_at = serializers.DateTimeField()
    lines = CreditNoteLineSerializer(many=True)


class InvoiceSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="`inv_…`.")
    number = serializers.CharField(help_text="Sequential per issuer and year, e.g. SP-2026-000123; empty on a "
                                             "draft statement.")
    period = serializers.SerializerMethodField(help_text="The month billed (UTC), YYYY-MM.")
    status = serializers.CharField(help_text="issued, paid or void; draft for a statement of a month so far.")
    to_date = serializers.BooleanField(help_text="true: a draft statement of the month so far (no number), replaced "
                                                 "by the month's invoice once the month has ended.")
    issuer = serializers.CharField()
    currency = serializers.CharField()
    subtotal = CentsField(help_text="The sum of the lines.")
    tax_rate = TaxRateField(help_text="Your tax rate: 0.2000 is 20 %.")
    tax = CentsField(help_text="subtotal x tax_rate, rounded half-up to cents.")
    total = CentsField(help_text="subtotal + tax.")
    held_unsettled = MoneyField(help_text="Not billed here: what was held at the period's end for live messages "
                                          "not yet sent; each is billed on the invoice of the month it is sent.")
    issued_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)

    def get_period(self, invoice) -> str:
        return f"{invoice.period:%Y-%m}"


class InvoiceDetailSerializer(InvoiceSerializer):
    bill_to = serializers.SerializerMethodField()
    lines = InvoiceLineSerializer(many=True)
    credit_notes = CreditNoteSerializer(many=True)

    @extend_schema_field({"type": "object", "properties": {"name": {"type": "string"}, "address": {"type": "string"},
                                                           "tax_id": {"type": "string"}},
                          "required": ["name", "address", "tax_id"]})
    def get_bill_to(self, invoice) -> dict:
        return {"name": invoice.bill_to_name, "address": invoice.bill_to_address, "tax_id": invoice.bill_to_tax_id}
