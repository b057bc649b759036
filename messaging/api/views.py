"""/v1 views for messages, quotes, message templates and usage."""
from decimal import Decimal
from numbers.errors import PoolEmpty, PoolNotFound

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.roles import Scope
from billing import selectors as billing_selectors
from billing.errors import InsufficientBalance, NoPriceForDestination
from billing.money import money_text
from compliance.errors import (
    DuplicateInFlight,
    FraudSuspected,
    InvalidTimezone,
    SenderNotRegistered,
    SenderNotSupported,
)
from messaging import accept, errors, selectors, services
from messaging.api import send
from messaging.api import serializers as s
from messaging.api.answers import batch_answer, message_answer
from messaging.api.filters import MessageFilter
from messaging.api.parsing import batch_parse, message_fields_parse
from messaging.models import Message, MessageTemplate
from smsportal.api.schema import Code, api_errors
from smsportal.api.throttling import MessageSendRateThrottle
from smsportal.api.views import ApiListView, ApiView

# What a send or a quote can refuse, beyond the shape of the body.
SEND_ERRORS = (
    errors.InvalidPhoneNumber,
    errors.InvalidSender,
    Code(400, "sender_not_allowed", "A number or short code in `from` that your account does not hold."),
    Code(400, "invalid_message_type", "message_type is not otp, transactional or marketing."),
    Code(400, "text_required", "Give `text`, or `template` with `variables`."),
    Code(400, "template_not_found", "No stored template has the name in `template`."),
    Code(400, "invalid_template", "The template's syntax is wrong (field `template`)."),
    Code(400, "template_variable_missing", "A placeholder of the template has no value (field `variables.NAME`)."),
    Code(400, "invalid_template_variable", "A value in `variables` is not text or a number."),
    Code(400, "message_too_long", "More segments than the account allows (default 10)."),
    Code(400, "invalid_validity_period", "validity_period must be 60 seconds to 72 hours."),
    Code(400, "invalid_scheduled_at", "scheduled_at is more than 30 days ahead."),
    Code(400, "invalid_metadata", "metadata is not a JSON object, or is larger than 4 KB."),
    Code(400, "invalid_callback_url", "callback_url is not a public http(s) URL."),
    Code(PoolNotFound.status, PoolNotFound.code, "`from` is `pool:NAME` and you have no pool of this name."),
    Code(PoolEmpty.status, PoolEmpty.code, "The pool in `from` has no number you hold that can send SMS."),
    Code(NoPriceForDestination.status, NoPriceForDestination.code, "No price list prices this destination and "
                                                                   "message type (field `to`)."),
    Code(InsufficientBalance.status, InsufficientBalance.code, "A live send your balance and credit limit do not "
                                                               "cover; nothing was stored."),
    Code(InvalidTimezone.status, InvalidTimezone.code, "`timezone` is not an IANA time-zone name."),
    Code(FraudSuspected.status, FraudSuspected.code, "A fraud rule blocked the message (field `to`): `reason` is the "
                                                     "rule, `message` the evidence. Nothing was stored."),
    Code(DuplicateInFlight.status, DuplicateInFlight.code, "The same OTP to this number is being accepted by another "
                                                           "request right now: retry after `Retry-After` for its answer."),
    Code(SenderNotRegistered.status, SenderNotRegistered.code, "An alphanumeric `from` to a country that takes only "
                                                               "registered sender IDs, without an approved one "
                                                               "(POST /v1/sender-ids)."),
    Code(SenderNotSupported.status, SenderNotSupported.code, "An alphanumeric `from` to a country that takes none "
                                                             "(the US, Canada, ...), and no number of it in your "
                                                             "fallback pool or among the platform's shared senders."),
)
TEMPLATE_ERRORS = (
    Code(400, "invalid_template_name", "A name uses letters, digits, '_', '-' and '.' only (1-100 characters)."),
    Code(400, "invalid_template", "The body's `${placeholder}` syntax is wrong (field `body`)."),
    Code(400, "invalid_message_type", "message_type is not otp, transactional or marketing."),
    errors.TemplateNameTaken,
)
SEND_EXAMPLES = [
    OpenApiExample("A one-time password", request_only=True, value={
        "to": "+14155550123", "from": "YourBrand", "text": "Your code is 123456", "message_type": "otp"}),
    OpenApiExample("From a stored template", request_only=True, value={
        "to": "+14155550123", "from": "YourBrand", "template": "Hi ${name}, your order ${order} has shipped.",
        "variables": {"name": "Ada", "order": "42"}, "client_reference": "order-42"}),
]


@extend_schema_view(get=extend_schema(
    summary="List messages",
    description="Your account's messages, newest first, filtered by status, recipient, type, your "
                "`client_reference` or creation time. Needs the `messages:read` scope."))
class MessageListView(ApiListView):
    """List messages (scope messages:read) or send one (scope messages:send)."""

    required_scopes = {"GET": Scope.MESSAGES_READ, "POST": Scope.MESSAGES_SEND}
    serializer_class = s.MessageSerializer
    filterset_class = MessageFilter
    # The per-key limit of every view and, on sends, the tenant's messages_per_second: one decision.
    throttle_classes = [MessageSendRateThrottle]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        return selectors.message_list(tenant=self.request.auth.tenant)

    def dispatch(self, request, *args, **kwargs):
        # A plain single send is answered without DRF's machinery (messaging/api/send.py); every other
        # request, and every send it hands back, goes through DRF and `post` below.
        if request.method == "POST":
            response = send.send_plain(request, allow=", ".join(self.allowed_methods))
            if response is not None:
                return response
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        summary="Send a message",
        description="Accept one SMS for sending: 202 with its `id` (`msg_…`) and `status` `queued` (or "
                    "`scheduled` with `scheduled_at`). Follow it with GET /v1/messages/{id} or webhooks. The "
                    "body is `text`, or a `template` with `variables`. Over the account's messages per second: "
                    "429 `rate_limited`. Send an `Idempotency-Key` to retry safely. Needs the `messages:send` scope.",
        request=s.MessageCreateSerializer, examples=SEND_EXAMPLES,
        responses={202: s.MessageSendAnswerSerializer, **api_errors(*SEND_ERRORS)})
    def post(self, request):
        (draft,) = accept.messages_accept(tenant=request.auth.tenant, api_key=request.auth, items=[_item(request.data)],
                                          request_limits=getattr(request, "deferred_limits", ()),
                                          limits_counted=getattr(request._request, "send_limits_counted", False))
        if draft.error is not None:
            raise draft.error
        return Response(message_answer(draft), status=status.HTTP_202_ACCEPTED)


def _item(data) -> dict | Exception:
    """The send's arguments, or its parse error: a bad request still counts against the key's limit."""
    try:
        return message_fields_parse(data)
    except ValidationError as exc:
        return exc


class MessageBatchView(ApiView):
    """Up to 1,000 messages in one request: every item validated, the valid ones accepted in one transaction."""

    required_scope = Scope.MESSAGES_SEND
    serializer_class = s.BatchResultSerializer
    throttle_classes = [MessageSendRateThrottle]

    @extend_schema(
        summary="Send up to 1,000 messages",
        description=(
            "Each item of `messages` is shaped like a single send (POST /v1/messages), with `defaults` merged "
            "under it. Every item is validated; the valid ones are accepted in one transaction. The answer has a "
            "result per item, by index: an `id` and `status`, or an `error` with `code` and `field`. 202 when at "
            "least one was accepted, else 400 `batch_rejected` with the same results. Rate limits count every "
            "message; a batch larger than your account's rate allows at once is 400 `batch_too_large`. "
            "Idempotent as a whole with Idempotency-Key."),
        request=s.BatchCreateSerializer,
        responses={202: s.BatchResultSerializer, **api_errors(
            Code(400, "batch_rejected", "No message was accepted; `results` says why for each, by index."),
            Code(400, "batch_too_large", "More messages than your account's rate allows at once, or than one "
                                         "recipient may get (field `messages`): send smaller batches."),
            Code(400, "required", "`messages` is missing (or a message lacks `to` or `from`, in its result)."),
            Code(429, "rate_limited", "Over your account's messages per second: retry after `Retry-After`."))},
        examples=[
            OpenApiExample("Two messages with shared defaults", request_only=True, value={
                "defaults": {"from": "YourBrand", "text": "Your order has shipped", "message_type": "transactional"},
                "messages": [{"to": "+14155550123"}, {"to": "+14155550124", "client_reference": "order-42"}]}),
            OpenApiExample("One accepted, one refused", response_only=True, status_codes=["202"], value={
                "accepted": 1, "rejected": 1, "results": [
                    {"index": 0, "id": "msg_4fQ8xZ1bN0aTqL2kV9cR", "status": "queued"},
                    {"index": 1, "error": {"code": "invalid_phone_number", "field": "to",
                                           "message": "'12' is not a valid phone number."}}]}),
        ],
    )
    def post(self, request):
        drafts = accept.messages_accept(tenant=request.auth.tenant, api_key=request.auth, items=batch_parse(request.data),
                                        request_limits=getattr(request, "deferred_limits", ()))
        answer = batch_answer(drafts)
        return Response(answer, status=status.HTTP_202_ACCEPTED if answer["accepted"] else status.HTTP_400_BAD_REQUEST)


class MessageDetailView(ApiView):
    required_scope = Scope.MESSAGES_READ
    serializer_class = s.MessageDetailSerializer

    @extend_schema(summary="Show a message", description="One message with its events (every status "
                   "change, oldest first), `sent_at`, `delivered_at` and `error`. Needs the `messages:read` scope.")
    def get(self, request, message_id):
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id, with_events=True)
        return Response(s.MessageDetailSerializer(message).data)


class MessageCancelView(ApiView):
    required_scope = Scope.MESSAGES_SEND
    serializer_class = s.MessageDetailSerializer

    @extend_schema(summary="Cancel a message",
                   description="Cancel a message that is still `scheduled` or `queued`: it is never sent. Any "
                               "later status gets 409 `message_not_cancelable`. Needs the `messages:send` scope.",
                   request=None, responses={200: s.MessageDetailSerializer, **api_errors(errors.MessageNotCancelable)})
    def post(self, request, message_id):
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id)
        services.message_cancel(tenant=request.auth.tenant, message=message)
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id, with_events=True)
        return Response(s.MessageDetailSerializer(message).data)


class MessageQuoteView(ApiView):
    """Encoding, segments and characters for a message, without sending or storing anything."""

    required_scope = Scope.MESSAGES_SEND
    serializer_class = s.QuoteSerializer

    @extend_schema(
        summary="Quote a message",
        description="What a send of this body would be, without sending or storing anything: encoding, "
                    "segments, characters, the characters that force UCS-2 and where they are, and the text "
                    "after smart encoding. Same body and checks as POST /v1/messages. Needs the `messages:send` "
                    "scope.",
        request=s.MessageCreateSerializer, examples=SEND_EXAMPLES,
        responses={200: s.QuoteSerializer, **api_errors(*SEND_ERRORS)})
    def post(self, request):
        (draft,) = accept.messages_quote(tenant=request.auth.tenant, api_key=request.auth,
                                         items=[message_fields_parse(request.data)])
        if draft.error is not None:
            raise draft.error
        prepared = draft.message
        analysis = prepared.analysis
        return Response(s.QuoteSerializer({
            "encoding": analysis.encoding, "segments": analysis.segment_count, "characters": analysis.characters,
            "units": analysis.units, "text": analysis.text, "smart_encoded": analysis.smart_encoded,
            "segments_without_smart_encoding": analysis.original_segment_count,
            "ucs2_characters": analysis.ucs2_characters, "to": prepared.to, "message_type": prepared.message_type,
            "price": money_text(draft.price), "currency": draft.currency or None, "billed": draft.billed,
            "sender_substituted": prepared.sender_substituted,
        }).data)


@extend_schema_view(get=extend_schema(
    summary="List templates",
    description="Your stored message templates, newest first, each with the `placeholders` its body uses. "
                "Needs the `messages:read` scope."))
class TemplateListView(ApiListView):
    required_scopes = {"GET": Scope.MESSAGES_READ, "POST": Scope.MESSAGES_SEND}
    serializer_class = s.TemplateSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return MessageTemplate.objects.none()
        return selectors.template_list(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Create a template",
        description="Store a message body with `${placeholders}` under a name; send it with "
                    '`"template": "NAME"` and `variables`. Values are inserted as text, never evaluated. '
                    "Needs the `messages:send` scope.",
        request=s.TemplateWriteSerializer, responses={201: s.TemplateSerializer, **api_errors(*TEMPLATE_ERRORS)},
        examples=[OpenApiExample("An order notice", request_only=True, value={
            "name": "order_shipped", "body": "Hi ${name}, your order ${order} has shipped.",
            "message_type": "transactional", "description": "Sent when an order leaves the warehouse"})])
    def post(self, request):
        data = s.TemplateWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = services.template_create(tenant=request.auth.tenant, **data.validated_data)
        return Response(s.TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(ApiView):
    required_scopes = {"GET": Scope.MESSAGES_READ, "*": Scope.MESSAGES_SEND}
    serializer_class = s.TemplateSerializer

    def _get(self, request, template_id):
        return selectors.template_get(tenant=request.auth.tenant, public_id=template_id)

    @extend_schema(summary="Show a template", description="One stored template. Needs the `messages:read` scope.")
    def get(self, request, template_id):
        return Response(s.TemplateSerializer(self._get(request, template_id)).data)

    @extend_schema(summary="Change a template",
                   description="Change the name, body, type or description; fields left out stay as they are. "
                               "Messages already sent keep their text. Needs the `messages:send` scope.",
                   request=s.TemplateWriteSerializer(partial=True),
                   responses={200: s.TemplateSerializer, **api_errors(*TEMPLATE_ERRORS)},
                   examples=[OpenApiExample("A new body", request_only=True,
                                            value={"body": "Hi ${name}, order ${order} is on its way."})])
    def patch(self, request, template_id):
        template = self._get(request, template_id)
        data = s.TemplateWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = services.template_update(tenant=request.auth.tenant, template=template, **data.validated_data)
        return Response(s.TemplateSerializer(template).data)

    @extend_schema(summary="Delete a template", description="Delete the template. Messages sent from it keep "
                   "their text and `template_ref`. Needs the `messages:send` scope.")
    def delete(self, request, template_id):
        services.template_delete(tenant=request.auth.tenant, template=self._get(request, template_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UsageView(ApiView):
    """Counts, segments and amount of the tenant's billed messages, by day, country or type (scope billing:read).

    In messaging, not billing/api: it reads messages, and messaging sits above billing."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.UsageAnswerSerializer

    @extend_schema(
        summary="Show your usage",
        description="Your live messages accepted from `from` to `to` (days, UTC, both included; by default the "
                    "last 30 days), less those never charged (their hold was released: failed before leaving "
                    "us, rejected, expired or canceled): how many, their segments and what they cost, by `day`, "
                    "recipient `country` or `message_type`. At most 366 days. Needs the `billing:read` scope.",
        parameters=[s.UsageQuerySerializer],
        responses={200: s.UsageAnswerSerializer, **api_errors(
            Code(400, "invalid_range", "`from` is after `to` (field `from`)."),
            Code(400, "range_too_long", "The range spans more than 366 days (field `from`)."),
            Code(400, "invalid", "`from` or `to` is not a day (YYYY-MM-DD)."),
            Code(400, "invalid_choice", "`group_by` is not day, country or message_type."))})
    def get(self, request):
        query = s.UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = request.auth.tenant
        data = selectors.message_usage(tenant=tenant, **params)
        total = {"group": "total", "messages": sum(d["messages"] for d in data),
                 "segments": sum(d["segments"] for d in data), "amount": sum((d["amount"] for d in data), Decimal(0))}
        balance = billing_selectors.balance_get(tenant=tenant)
        answer = {"from": params["start"], "to": params["end"], "group_by": params["group_by"],
                  "currency": balance.currency if balance else settings.BILLING_DEFAULT_CURRENCY,
                  "data": data, "total": total}
        return Response(s.UsageAnswerSerializer(answer).data)
