"""/v1/sender-ids: register a sender ID (or one of your numbers) for some countries, add its documents, read
its review (the `compliance` scope). docs/compliance.md "Sender IDs"."""
from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.api.views import actor_for
from accounts.roles import Scope
from compliance import sender_ids
from compliance.errors import InvalidCountry, InvalidDocument, InvalidSenderId, SenderIdNotFound, SenderIdNotPending
from compliance.models import SenderId, SenderIdDocument
from smsportal.api.schema import api_errors
from smsportal.api.serializers import JsonBodySerializer
from smsportal.api.views import ApiListView, ApiView


class SenderIdDocumentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = SenderIdDocument
        fields = ["id", "name", "content_type", "size", "created_at"]
        read_only_fields = fields


class SenderIdSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    status = serializers.SerializerMethodField(help_text="pending, approved, rejected, or expired (an approval past "
                                                         "`expires_at`).")
    reason = serializers.CharField(read_only=True, help_text="The account manager's reason for the decision.")
    documents = SenderIdDocumentSerializer(many=True, read_only=True)

    class Meta:
        model = SenderId
        fields = ["id", "value", "countries", "use_case", "sample_messages", "status", "reason", "reviewed_at",
                  "expires_at", "documents", "created_at"]
        read_only_fields = fields

    def get_status(self, sender_id) -> str:
        return sender_ids.sender_id_status(sender_id)


class SenderIdWriteSerializer(JsonBodySerializer):
    # A known ISO code is checked by the service (400 `invalid_country`); its shape is said here.
    schema_rules = {"properties": {"countries": {"items": {"pattern": "^[A-Za-z]{2}$"}}}}

    value = serializers.CharField(max_length=20, help_text="The alphanumeric sender ID (3 to 11 characters, at least "
                                                           "one letter), or one of your numbers in E.164.")
    countries = serializers.ListField(child=serializers.CharField(max_length=2), min_length=1, max_length=250,
                                      help_text="ISO 3166-1 alpha-2 codes of the countries to send to with it.")
    use_case = serializers.CharField(max_length=2000, help_text="What you send with it, and to whom.")
    sample_messages = serializers.ListField(child=serializers.CharField(max_length=1000), required=False,
                                            default=list, max_length=5, help_text="Up to 5 examples.")


class SenderIdDocumentWriteSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A PDF, PNG or JPEG (e.g. a letter of authorization), at most "
                                           "SENDER_ID_DOCUMENT_MAX_BYTES (1.5 MB by default).")


class SenderIdFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=SenderId.Status.choices, method="by_status")

    class Meta:
        model = SenderId
        fields = ["status"]

    def by_status(self, queryset, name, value):
        return sender_ids.sender_id_list(tenant=self.request.auth.tenant, status=value)


REGISTER_ERRORS = (InvalidSenderId, InvalidCountry)


@extend_schema_view(get=extend_schema(
    operation_id="sender_ids_list", summary="List sender IDs",
    description="Your sender-ID registrations, newest first, with their review. Filter by `status`. Needs the "
                "`compliance` scope."))
class SenderIdListView(ApiListView):
    """The tenant's sender IDs (GET), or register one (POST)."""

    required_scope = Scope.COMPLIANCE
    serializer_class = SenderIdSerializer
    filterset_class = SenderIdFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SenderId.objects.none()
        return sender_ids.sender_id_list(tenant=self.request.auth.tenant)

    @extend_schema(
        operation_id="sender_ids_create", summary="Register a sender ID",
        description="Register an alphanumeric sender ID, or one of your numbers, for some countries: it waits as "
                    "`pending` until an account manager approves or rejects it (you get an email and the event "
                    "`sender_id.reviewed`). Where a country takes only registered IDs a send from an unapproved one "
                    "is 422 `sender_not_registered`. Add documents (a letter of authorization) with POST "
                    "/v1/sender-ids/{id}/documents. Audited. Needs the `compliance` scope.",
        request=SenderIdWriteSerializer, responses={201: SenderIdSerializer, **api_errors(*REGISTER_ERRORS)},
        examples=[OpenApiExample("A brand for India and Singapore", request_only=True, value={
            "value": "YourBrand", "countries": ["IN", "SG"], "use_case": "One-time passwords at sign-in",
            "sample_messages": ["Your YourBrand code is 123456"]})])
    def post(self, request):
        data = SenderIdWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = request.auth.tenant
        created = sender_ids.sender_id_register(tenant=tenant, actor=actor_for(request), **data.validated_data)
        found = sender_ids.sender_id_get(tenant=tenant, public_id=created.public_id)
        return Response(SenderIdSerializer(found).data, status=status.HTTP_201_CREATED)


class SenderIdDetailView(ApiView):
    """One sender ID with its review and documents."""

    required_scope = Scope.COMPLIANCE
    serializer_class = SenderIdSerializer

    @extend_schema(operation_id="sender_ids_retrieve", summary="Show a sender ID",
                   description="One registration with its status, the reviewer's reason and its documents. "
                               "Another account's is 404 `not_found`. Needs the `compliance` scope.",
                   responses={200: SenderIdSerializer, **api_errors(SenderIdNotFound)})
    def get(self, request, sender_id):
        return Response(SenderIdSerializer(sender_ids.sender_id_get(tenant=request.auth.tenant,
                                                                    public_id=sender_id)).data)


class SenderIdDocumentsView(ApiView):
    """Add a document to a pending registration (multipart/form-data, field `file`)."""

    required_scope = Scope.COMPLIANCE
    serializer_class = SenderIdDocumentSerializer
    parser_classes = [MultiPartParser]

    @extend_schema(operation_id="sender_ids_documents_create", summary="Add a sender-ID document",
                   description="Upload a PDF, PNG or JPEG for a registration still `pending` (multipart/form-data, "
                               "field `file`): its type is read from its content, not its name. After the review it "
                               "is 409 `not_pending`. Audited. Needs the `compliance` scope.",
                   request={"multipart/form-data": SenderIdDocumentWriteSerializer},
                   responses={201: SenderIdDocumentSerializer,
                              **api_errors(SenderIdNotFound, InvalidDocument, SenderIdNotPending)})
    def post(self, request, sender_id):
        tenant = request.auth.tenant
        found = sender_ids.sender_id_get(tenant=tenant, public_id=sender_id)  # another tenant's: 404 first
        data = SenderIdDocumentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        document = sender_ids.sender_id_document_add(tenant=tenant, sender_id=found, upload=data.validated_data["file"],
                                                     actor=actor_for(request))
        return Response(SenderIdDocumentSerializer(document).data, status=status.HTTP_201_CREATED)
