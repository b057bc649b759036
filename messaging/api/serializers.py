"""Serializers for /v1/messages, /v1/templates and /v1/usage. Validation of meaning lives in the services."""
from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from billing.api.serializers import MoneyField
from messaging import selectors
from messaging.models import Message, MessageAttempt, MessageEvent, MessageTemplate, MessageType
from messaging.templating import TEMPLATE_NAME_PATTERN
from smsportal.api.serializers import JsonBodySerializer

# messaging.services.message_type_normalize: one of the types, any case, spaces around ignored.
MESSAGE_TYPE_PATTERN = r"^\s*(" + "|".join("".join(f"[{c.upper()}{c}]" for c in t) for t in MessageType.values) + r")\s*$"


class _FromFieldMixin:
    """`from` is a Python keyword: the field is declared as `sender` and renamed on the wire.

    Its source stays `sender`: bound as `from` without it, the field would read `message.from`, and DRF
    silently skips a non-required field whose attribute is missing (answers had no `from`)."""

    def get_fields(self):
        fields = {("from" if name == "sender" else name): field for name, field in super().get_fields().items()}
        fields["from"].source = "sender"
        return fields


class MessageCreateSerializer(_FromFieldMixin, JsonBodySerializer):
    # Checked by the service with its own codes (text_required, invalid_message_type,
    # invalid_validity_period), shown here.
    schema_rules = {
        "anyOf": [{"required": ["text"], "properties": {"text": {"minLength": 1}}},
                  {"required": ["template"], "properties": {"template": {"minLength": 1}}}],
        "properties": {"message_type": {"pattern": MESSAGE_TYPE_PATTERN},
                       "validity_period": {"minimum": 60, "maximum": 72 * 3600},
                       "metadata": {"type": "object", "description": "Your data, kept with the message and sent "
                                                                     "in its webhooks: a JSON object, 4 KB at most."}},
    }
    to = serializers.CharField(max_length=40)
    sender = serializers.CharField(max_length=60, help_text="Alphanumeric sender ID (1-11), an E.164 number or "
                                                            "short code you rent or lease, a shared sender your "
                                                            "account may use, or `pool:NAME` to send from a number "
                                                            "of that number pool. Any other number is 400 "
                                                            "`sender_not_allowed`.")
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=10000)
    template = serializers.CharField(required=False, allow_blank=True, max_length=10000,
                                     help_text="Name of a stored template, or an inline body with ${placeholders}.")
    variables = serializers.DictField(required=False, default=dict)
    message_type = serializers.CharField(required=False, default=MessageType.TRANSACTIONAL,
                                         help_text="otp, transactional or marketing (any case).")
    region = serializers.CharField(required=False, allow_blank=True, max_length=2,
                                   help_text="Default country (ISO 3166-1 alpha-2) for national-format numbers.")
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)
    validity_period = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                               help_text="Seconds the message may wait to be sent: 60 s to 72 h; "
                                                         "default OTP 10 min, transactional 4 h, marketing 24 h.")
    client_reference = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    metadata = serializers.JSONField(required=False, default=dict)
    smart_encoding = serializers.BooleanField(required=False, default=True)
    callback_url = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    timezone = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                     help_text="The recipient's IANA time zone (e.g. America/Chicago) for quiet "
                                               "hours; by default the number's own (its area code's, for the US). "
                                               "A name that is not IANA's is 400 `invalid_timezone`.")

    def to_service_kwargs(self) -> dict:
        return dict(self.validated_data)


# POST /v1/messages/batch, for the schema: messaging/api/parsing.py reads the body.
class BatchCreateSerializer(serializers.Serializer):

    defaults = MessageCreateSerializer(required=False, partial=True,
                                       help_text="Fields every message gets unless it sets them itself.")
    messages = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=1000,
                                     help_text="1 to 1,000 messages, each shaped like a single send "
                                               "(POST /v1/messages); `defaults` are merged under each.")


class BatchItemErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)
    reason = serializers.CharField(required=False, help_text="With `fraud_suspected`: the rule's code.")


class SenderSubstitutedSerializer(serializers.Serializer):
    requested = serializers.CharField(help_text="The alphanumeric `from` you sent.")
    used = serializers.CharField(help_text="The number (E.164) the message is sent from instead.")


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The position of the message in `messages`, from 0.")
    id = serializers.CharField(required=False, help_text="The accepted message's id.")
    status = serializers.CharField(required=False, help_text="queued, or scheduled.")
    scheduled_reason = serializers.CharField(required=False, help_text="`quiet_hours`: deferred to the recipient's "
                                                                       "next allowed window.")
    deduplicated = serializers.BooleanField(required=False, help_text="true: the earlier identical OTP's id and "
                                                                      "status, not a new message.")
    sender_substituted = SenderSubstitutedSerializer(
        required=False, help_text="Present when the destination takes no alphanumeric sender: the number sent from.")
    error = BatchItemErrorSerializer(required=False, help_text="Why this message was refused; nothing was stored.")


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchItemResultSerializer(many=True, help_text="One result per message, in order.")


class MessageEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageEvent
        fields = ["sequence", "status", "source", "detail", "error_code", "carrier_error_code", "created_at"]


class MessageSerializer(_FromFieldMixin, serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    encoding = serializers.CharField()
    price = MoneyField(read_only=True, allow_null=True,
                       help_text="Segments times the unit price, as a string decimal; null without billing.")
    currency = serializers.CharField(read_only=True, allow_null=True, help_text="ISO 4217; null without a price.")
    billed = serializers.BooleanField(read_only=True, help_text="false: a test key's price, shown, never charged.")
    pool = serializers.CharField(source="pool.name", allow_null=True, default=None,
                                 help_text="The number pool `from` was picked from (`pool:NAME`), else null.")
    scheduled_reason = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="Why the message waits though you did not schedule it: `quiet_hours` (a marketing message "
                  "outside the recipient's allowed hours, sent at `scheduled_at`, the next window's start); else null.")
    sender_substituted = SenderSubstitutedSerializer(
        read_only=True, allow_null=True,
        help_text="Where the destination takes no alphanumeric sender (the US, Canada, ...): `requested`, your "
                  "`from`, and `used`, the number it is sent from instead (your fallback pool's, else the "
                  "platform's shared sender for the country); null when `from` is as you sent it.")

    class Meta:
        model = Message
        fields = ["id", "status", "to", "sender", "pool", "text", "encoding", "segments", "characters",
                  "message_type", "created_at", "scheduled_at", "scheduled_reason", "expires_at",
                  "client_reference", "metadata", "price", "currency", "billed", "sender_substituted"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["currency"] = data["currency"] or None
        data["scheduled_reason"] = data.get("scheduled_reason") or None
        return data


class MessageSendAnswerSerializer(MessageSerializer):
    """The 202 of a single send: the message, and `deduplicated` when it is an earlier one (the schema's only)."""

    deduplicated = serializers.BooleanField(
        required=False, help_text="Present and true when this is an earlier, identical OTP to the same number "
                                  "(within 30 s), answered instead of sending it again.")

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "deduplicated"]
        read_only_fields = MessageSerializer.Meta.fields


class RoutingAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=MessageAttempt.Outcome.choices)
    error_code = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    submit_ms = serializers.IntegerField(allow_null=True, help_text="From routing to the carrier's answer.")
    receipt_ms = serializers.IntegerField(allow_null=True, help_text="From the carrier's answer to the final receipt.")


class RoutingSerializer(serializers.Serializer):
    country = serializers.CharField(allow_null=True)
    operator = serializers.CharField(allow_null=True, help_text="MCC/MNC of the route, when it names one.")
    quality_class = serializers.CharField(help_text="premium, standard, low or unrated (live delivery rate).")
    reason = serializers.CharField(help_text="Why the route was chosen.")
    attempts = RoutingAttemptSerializer(many=True)


class MessageDetailSerializer(MessageSerializer):
    events = MessageEventSerializer(source="timeline", many=True, read_only=True,
                                    help_text="From `accepted` on (selectors.message_timeline).")
    error = serializers.SerializerMethodField()
    routing = RoutingSerializer(read_only=True, allow_null=True, default=None,
                                help_text="How a live message was routed (null: not routed, e.g. test mode).")

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "template_ref", "sent_at", "delivered_at", "error", "events",
                  "routing"]
        read_only_fields = fields

    def get_error(self, message) -> dict | None:
        if not message.error_code:
            return None
        return {"code": message.error_code, "message": message.error_message}


class QuoteSerializer(serializers.Serializer):
    encoding = serializers.CharField()
    segments = serializers.IntegerField()
    characters = serializers.IntegerField()
    units = serializers.IntegerField(help_text="GSM-7 septets or UCS-2 (UTF-16) units.")
    text = serializers.CharField(help_text="The text that would be sent (after smart encoding).")
    smart_encoded = serializers.BooleanField()
    segments_without_smart_encoding = serializers.IntegerField()
    ucs2_characters = serializers.ListField(child=serializers.DictField(),
                                            help_text="Characters that force UCS-2, with positions.")
    to = serializers.CharField()
    message_type = serializers.CharField()
    price = serializers.CharField(allow_null=True, help_text="What the send would cost (string decimal); null "
                                                             "without billing.")
    currency = serializers.CharField(allow_null=True)
    billed = serializers.BooleanField(help_text="Whether a send with this key would be charged (false: a test key).")
    sender_substituted = SenderSubstitutedSerializer(
        allow_null=True, help_text="Where the destination takes no alphanumeric sender: the number a send would go "
                                   "from instead (as on the message); else null.")


# messaging.templating: `${name}` opens a placeholder; any other `$` is text.
TEMPLATE_BODY_PATTERN = r"^(?:[^$]|[$]+(?:[^${]|[{][A-Za-z_][A-Za-z0-9_]{0,63}[}]))*(?:[$]+)?$"


class TemplateSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    placeholders = serializers.SerializerMethodField()

    class Meta:
        model = MessageTemplate
        fields = ["id", "name", "body", "message_type", "description", "placeholders", "created_at", "updated_at"]
        read_only_fields = ["id", "placeholders", "created_at", "updated_at"]

    def get_placeholders(self, template) -> list[str]:
        from messaging import templating

        try:
            return templating.placeholders(template.body)
        except templating.TemplateSyntaxError:
            return []


class TemplateWriteSerializer(JsonBodySerializer):
    # Checked by the service (invalid_template_name, invalid_template, invalid_message_type), shown here.
    schema_rules = {"properties": {"name": {"pattern": f"^{TEMPLATE_NAME_PATTERN}$"},
                                   "body": {"pattern": TEMPLATE_BODY_PATTERN},
                                   "message_type": {"pattern": MESSAGE_TYPE_PATTERN}}}

    name = serializers.CharField(max_length=100, help_text="Letters, digits, '_', '-' and '.' (1-100).")
    body = serializers.CharField(max_length=10000, trim_whitespace=False,
                                 help_text="The text, with `${placeholders}` for `variables`.")
    message_type = serializers.CharField(required=False, default=MessageType.TRANSACTIONAL)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class UsageQuerySerializer(serializers.Serializer):
    """GET /v1/usage's query: `from` and `to` (days, UTC, both included), `group_by`."""

    start = serializers.DateField(required=False, help_text="First day (YYYY-MM-DD, UTC); default: 29 days "
                                                            "before `to`.")
    end = serializers.DateField(required=False, help_text="Last day, included (YYYY-MM-DD, UTC); default: today.")
    group_by = serializers.ChoiceField(choices=selectors.USAGE_GROUPS, required=False, default="day",
                                       help_text="day, country or message_type; default: day.")

    MAX_DAYS = 366

    def get_fields(self):
        fields = super().get_fields()
        return {{"start": "from", "end": "to"}.get(name, name): field for name, field in fields.items()}

    def validate(self, attrs):
        end = attrs.pop("to", None) or timezone.now().date()
        start = attrs.pop("from", None) or end - timedelta(days=29)
        if start > end:
            raise ValidationError({"from": [ErrorDetail("`from` must be on or before `to`.", code="invalid_range")]})
        if (end - start).days >= self.MAX_DAYS:
            raise ValidationError({"from": [ErrorDetail(f"The range may span at most {self.MAX_DAYS} days.",
                                                        code="range_too_long")]})
        return {**attrs, "start": start, "end": end}


class UsageSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="The day (YYYY-MM-DD), country (ISO 3166 alpha-2) or message type.")
    messages = serializers.IntegerField()
    segments = serializers.IntegerField()
    amount = MoneyField(help_text="What they cost, in `currency`, as a string decimal.")


class UsageAnswerSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.CharField()
    currency = serializers.CharField(help_text="ISO 4217: your account's currency.")
    data = UsageSerializer(many=True)
    total = UsageSerializer(help_text="The sums of `data` (`group` is `total`).")

    def get_fields(self):
        fields = super().get_fields()
        return {{"start": "from", "end": "to"}.get(name, name): field for name, field in fields.items()}
