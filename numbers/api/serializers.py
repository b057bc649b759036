"""Serializers for /v1/numbers. Validation of meaning (TTL bounds, callback URL) lives in the services."""
from numbers.models import Capability, NumberType, PhoneNumber
from numbers.services import NOTICE_MAX, TTL_MAX, TTL_MIN

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from smsportal.api.serializers import JsonBodySerializer


class NumberFilterSerializer(serializers.Serializer):
    """Query of GET /v1/numbers/available, and the filters of POST /v1/numbers."""

    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False,
                                     help_text="ISO 3166-1 alpha-2, e.g. GB.")
    type = serializers.ChoiceField(choices=NumberType.choices, required=False)
    capability = serializers.ChoiceField(choices=Capability.choices, required=False)
    contains = serializers.RegexField(r"^\d{1,15}$", required=False,
                                      help_text="Digits the number must contain.")

    def validate_country(self, value: str) -> str:
        return value.upper()


class NumberPriceSerializer(serializers.Serializer):
    """What holding a number of this type and country costs you (your price list over the default one)."""

    monthly_rental = serializers.CharField(help_text="A string decimal: per month rented, charged per day held.")
    lease_per_hour = serializers.CharField(help_text="A string decimal: per hour leased, charged to the second.")
    currency = serializers.CharField(help_text="Your account's currency (ISO 4217).")


PRICE_HELP = "What the number costs you (rental and lease); null when it has no price yet."
MONTHLY_PRICE_HELP = "The inventory's list price, without a currency; what you are charged is `price`."


class PricedMixin(serializers.Serializer):
    """A `price` from the tenant's number prices, which the view puts in the context (`number_prices`: one
    read per request, numbers.hooks.number_prices)."""

    price = serializers.SerializerMethodField(help_text=PRICE_HELP)
    price_of = "self"  # where the PhoneNumber is: the object itself, or its `number`

    @extend_schema_field(NumberPriceSerializer(allow_null=True))
    def get_price(self, obj) -> dict | None:
        number = obj if self.price_of == "self" else getattr(obj, self.price_of)
        shown = self.context.get("number_prices", {}).get((number.type, number.country))
        return NumberPriceSerializer(shown).data if shown else None


class AvailableNumberSerializer(PricedMixin, serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    monthly_price = serializers.DecimalField(max_digits=12, decimal_places=4, coerce_to_string=True,
                                             help_text=MONTHLY_PRICE_HELP)
    capabilities = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = PhoneNumber
        fields = ["id", "number", "country", "type", "capabilities", "monthly_price", "price"]
        read_only_fields = fields


class NumberAssignSerializer(JsonBodySerializer):
    # Either a number or filters (at least country, type or contains), never both: as validate() says.
    schema_rules = {
        "anyOf": [{"required": ["number"]}, {"required": ["country"]}, {"required": ["type"]},
                  {"required": ["contains"]}],
        "not": {"required": ["number"], "anyOf": [{"required": ["country"]}, {"required": ["type"]},
                                                  {"required": ["contains"]}]},
    }

    number = serializers.CharField(required=False, max_length=20, help_text="A given available number (E.164).")
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False)
    type = serializers.ChoiceField(choices=NumberType.choices, required=False)
    capability = serializers.ChoiceField(choices=Capability.choices, required=False, default=Capability.SMS)
    contains = serializers.RegexField(r"^\d{1,15}$", required=False)

    def validate(self, attrs):
        filters = {"country", "type", "contains"} & set(attrs)
        if "number" in attrs and filters:
            raise serializers.ValidationError(
                {"number": "Give either a number or filters (country, type, capability, contains), not both."},
                code="number_and_filters")
        if "number" not in attrs and not filters:
            raise serializers.ValidationError("Give a number, or filters (at least country, type or contains).",
                                              code="number_or_filters_required")
        if "country" in attrs:
            attrs["country"] = attrs["country"].upper()
        return attrs


class AssignmentSerializer(PricedMixin, serializers.Serializer):
    """A number the tenant rents (POST /v1/numbers)."""

    price_of = "number"

    id = serializers.CharField(source="number.public_id", help_text="The number's id (DELETE /v1/numbers/{id}).")
    assignment_id = serializers.CharField(source="public_id")
    number = serializers.CharField(source="number.number")
    country = serializers.CharField(source="number.country")
    type = serializers.CharField(source="number.type")
    capabilities = serializers.ListField(source="number.capabilities", child=serializers.CharField())
    monthly_price = serializers.DecimalField(source="number.monthly_price", max_digits=12, decimal_places=4,
                                             help_text=MONTHLY_PRICE_HELP)
    started_at = serializers.DateTimeField()


class HeldNumberSerializer(PricedMixin, serializers.ModelSerializer):
    """One number the tenant holds (GET /v1/numbers): by assignment, or by lease with its expiry."""

    id = serializers.CharField(source="public_id")
    capabilities = serializers.ListField(child=serializers.CharField())
    monthly_price = serializers.DecimalField(max_digits=12, decimal_places=4, help_text=MONTHLY_PRICE_HELP)
    holding = serializers.ChoiceField(choices=["assignment", "lease"], source="holding_kind")
    holding_id = serializers.CharField(help_text="The assignment (asg_) or lease (lse_) id.")
    started_at = serializers.DateTimeField(source="holding_started_at")
    expires_at = serializers.DateTimeField(source="holding_expires_at", allow_null=True,
                                           help_text="When the lease ends; null for an assignment.")

    class Meta:
        model = PhoneNumber
        fields = ["id", "number", "country", "type", "capabilities", "monthly_price", "price", "holding",
                  "holding_id", "started_at", "expires_at"]
        read_only_fields = fields


class LeaseCreateSerializer(JsonBodySerializer):
    schema_rules = {"properties": {"ttl_seconds": {"minimum": TTL_MIN, "maximum": TTL_MAX},
                                   "expiring_notice_seconds": {"minimum": 0, "maximum": NOTICE_MAX}}}

    country = serializers.RegexField(r"^[A-Za-z]{2}$", help_text="ISO 3166-1 alpha-2, e.g. US.")
    ttl_seconds = serializers.IntegerField(help_text=f"{TTL_MIN} (1 minute) to {TTL_MAX} (30 days).")
    type = serializers.ChoiceField(choices=NumberType.choices, required=False, default=NumberType.MOBILE)
    capability = serializers.ChoiceField(choices=Capability.choices, required=False, default=Capability.SMS)
    callback_url = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    # Bounds are the service's (400 `invalid_expiring_notice`); here only the type.
    expiring_notice_seconds = serializers.IntegerField(
        required=False, help_text=f"Seconds before the end that `number.lease_expiring` is sent: 0 (never) to "
                                  f"{NOTICE_MAX} (1 day); default NUMBER_LEASE_EXPIRING_NOTICE_SECONDS (60).")

    def validate_country(self, value: str) -> str:
        return value.upper()


class LeaseExtendSerializer(JsonBodySerializer):
    schema_rules = {"properties": {"ttl_seconds": {"minimum": TTL_MIN, "maximum": TTL_MAX}}}

    ttl_seconds = serializers.IntegerField(help_text="Seconds added to the current end (at most 30 days from now).")


class LeaseSerializer(PricedMixin, serializers.Serializer):
    price_of = "number"

    id = serializers.CharField(source="public_id")
    number = serializers.CharField(source="number.number", help_text="E.164.")
    number_id = serializers.CharField(source="number.public_id")
    country = serializers.CharField(source="number.country")
    type = serializers.CharField(source="number.type")
    status = serializers.CharField(read_only=True, help_text="active, expired or released.")
    started_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    released_at = serializers.DateTimeField(allow_null=True)
    release_reason = serializers.CharField()
    callback_url = serializers.CharField()
    expiring_notice_seconds = serializers.IntegerField(help_text="`number.lease_expiring` goes out this long "
                                                                 "before the end; 0: never.")



class InboundMessageSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    to = serializers.CharField(help_text="E.164.")
    # `from` is a Python keyword: the field is added below under that name.
    text = serializers.CharField()
    received_at = serializers.DateTimeField()
    code = serializers.CharField(allow_null=True, help_text="The verification code captured, if any.")
    service = serializers.CharField(allow_null=True, help_text="The service the code is for, if known.")
    lease = serializers.CharField(source="lease.public_id", allow_null=True, default=None)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["code"] = data["code"] or None
        data["service"] = data["service"] or None
        return data


InboundMessageSerializer._declared_fields["from"] = serializers.CharField(source="sender", help_text="E.164.")


class InboundFilterSerializer(serializers.Serializer):
    """Query of GET /v1/inbound-messages."""

    to = serializers.CharField(required=False)
    # `from` added below.
    lease = serializers.CharField(required=False, help_text="A lease id (lse_...).")
    has_code = serializers.BooleanField(required=False, allow_null=True, default=None)
    received_after = serializers.DateTimeField(required=False)
    received_before = serializers.DateTimeField(required=False)


InboundFilterSerializer._declared_fields["from"] = serializers.CharField(required=False)


class LeaseMessagesQuerySerializer(serializers.Serializer):
    wait = serializers.IntegerField(required=False, default=0, min_value=0, max_value=30,
                                    help_text="Seconds to wait for the first message (0-30).")


class SimulatorInboundSerializer(JsonBodySerializer):
    to = serializers.CharField(help_text="One of your numbers (E.164).")
    text = serializers.CharField(allow_blank=True, max_length=1600)
    carrier_message_id = serializers.CharField(required=False, allow_blank=True, max_length=100)


SimulatorInboundSerializer._declared_fields["from"] = serializers.RegexField(r"^\+[1-9]\d{6,14}$",
                                                                             help_text="E.164.")


# --- Number pools ---------------------------------------------------------------------------------


class PoolNumberSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    number = serializers.CharField(help_text="E.164.")
    country = serializers.CharField()


class PoolSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    description = serializers.CharField()
    sticky_sender = serializers.BooleanField()
    geo_match = serializers.BooleanField()
    numbers = PoolNumberSerializer(many=True, source="numbers.all",
                                   help_text="The numbers of the pool you still hold, by number.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


POOL_NAME_RULE = {"pattern": r"^[A-Za-z0-9_-]{1,50}$", "maxLength": 50}  # numbers.pools.POOL_NAME


class PoolWriteSerializer(JsonBodySerializer):
    schema_rules = {"properties": {"name": POOL_NAME_RULE}}

    name = serializers.CharField(max_length=100, help_text="Letters, digits, '-' and '_' (1-50); send with "
                                                           '`"from": "pool:NAME"`.')
    description = serializers.CharField(required=False, allow_blank=True, max_length=300)
    sticky_sender = serializers.BooleanField(required=False)
    geo_match = serializers.BooleanField(required=False)
    numbers = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=1000,
                                    help_text="Numbers you hold: E.164 or number ids (num_...). "
                                              "On PATCH it replaces the members.")


class PoolUpdateSerializer(PoolWriteSerializer):
    name = serializers.CharField(max_length=100, required=False)
    add_numbers = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=1000,
                                        help_text="Numbers to add (E.164 or number ids).")
    remove_numbers = serializers.ListField(child=serializers.CharField(max_length=40), required=False,
                                           max_length=1000, help_text="Numbers to take out (E.164 or number ids).")
