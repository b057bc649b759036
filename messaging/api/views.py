"""/v1 views for messages, quotes and message templates."""
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.roles import Scope
from messaging import accept, selectors, services
from messaging.api import serializers as s
from messaging.api.answers import batch_answer, message_answer
from messaging.api.filters import MessageFilter
from messaging.api.parsing import batch_parse, message_fields_parse
from messaging.models import Message, MessageTemplate
from smsportal.api.throttling import MessageSendRateThrottle
from smsportal.api.views import ApiListView, ApiView


class MessageListView(ApiListView):
    """List messages (scope messages:read) or send one (scope messages:send)."""

    required_scopes = {"GET": Scope.MESSAGES_READ, "POST": Scope.MESSAGES_SEND}
    serializer_class = s.MessageSerializer
    filterset_class = MessageFilter
    # The per-key limit of every view and, on sends, the tenant's messages_per_second: one decision.
    throttle_classes = [MessageSendRateThrottle]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.unscoped.none()
        return selectors.message_list(tenant=self.request.auth.tenant)

    @extend_schema(request=s.MessageCreateSerializer, responses={202: s.MessageSerializer})
    def post(self, request):
        (draft,) = accept.messages_accept(tenant=request.auth.tenant, api_key=request.auth, items=[_item(request.data)],
                                          request_limits=getattr(request, "deferred_limits", ()))
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
        request=s.BatchCreateSerializer, responses={202: s.BatchResultSerializer, 400: s.BatchResultSerializer},
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

    def get(self, request, message_id):
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id, with_events=True)
        return Response(s.MessageDetailSerializer(message).data)


class MessageCancelView(ApiView):
    required_scope = Scope.MESSAGES_SEND
    serializer_class = s.MessageDetailSerializer

    @extend_schema(request=None, responses={200: s.MessageDetailSerializer})
    def post(self, request, message_id):
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id)
        services.message_cancel(tenant=request.auth.tenant, message=message)
        message = selectors.message_get(tenant=request.auth.tenant, public_id=message_id, with_events=True)
        return Response(s.MessageDetailSerializer(message).data)


class MessageQuoteView(ApiView):
    """Encoding, segments and characters for a message, without sending or storing anything."""

    required_scope = Scope.MESSAGES_SEND
    serializer_class = s.QuoteSerializer

    @extend_schema(request=s.MessageCreateSerializer, responses={200: s.QuoteSerializer})
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
        }).data)


class TemplateListView(ApiListView):
    required_scopes = {"GET": Scope.MESSAGES_READ, "POST": Scope.MESSAGES_SEND}
    serializer_class = s.TemplateSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return MessageTemplate.unscoped.none()
        return selectors.template_list(tenant=self.request.auth.tenant)

    @extend_schema(request=s.TemplateWriteSerializer, responses={201: s.TemplateSerializer})
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

    def get(self, request, template_id):
        return Response(s.TemplateSerializer(self._get(request, template_id)).data)

    @extend_schema(request=s.TemplateWriteSerializer(partial=True), responses={200: s.TemplateSerializer})
    def patch(self, request, template_id):
        template = self._get(request, template_id)
        data = s.TemplateWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = services.template_update(tenant=request.auth.tenant, template=template, **data.validated_data)
        return Response(s.TemplateSerializer(template).data)

    def delete(self, request, template_id):
        services.template_delete(tenant=request.auth.tenant, template=self._get(request, template_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
