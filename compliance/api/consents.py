"""/v1 views of the consent ledger, suppressions and erasure requests (scope `compliance`; docs/compliance.md
"Consent and suppression", "Retention and erasure")."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.views import actor_for
from accounts.roles import Scope
from compliance import consent_services, retention, selectors
from compliance.consent_services import Proof
from compliance.errors import ConsentInvalid, SuppressionNotFound
from compliance.models import ConsentRecord, ConsentScope, ErasureRequest, Suppression
from smsportal.api.pagination import CursorPagination
from smsportal.api.schema import api_errors
from smsportal.api.serializers import JsonBodySerializer
from smsportal.api.views import ApiListView, ApiView

_E164 = r"^\+[1-9][0-9]{6,14}$"


class _ScopeFields(JsonBodySerializer):
    scope = serializers.ChoiceField(choices=ConsentScope.choices, default=ConsentScope.TENANT,
                                    help_text="tenant: every sender; sender: the number in `sender`; pool: the pool "
                                              "in `pool` (every number in it).")
    sender = serializers.RegexField(_E164, required=False, allow_blank=True, max_length=16,
                                    help_text="The sender number (E.164), for scope `sender`.")
    pool = serializers.RegexField(r"^pool_[0-9A-Za-z]{1,27}$", required=False, allow_blank=True, max_length=32,
                                  help_text="The pool's id (pool_…), for scope `pool`.")


class ProofSerializer(serializers.Serializer):
    text = serializers.CharField(source="consent_text", help_text="The words agreed to (blank once erased).")
    version = serializers.CharField(source="consent_version")
    at = serializers.DateTimeField(source="consented_at")
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    page_url = serializers.CharField()


class ConsentSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    pool = serializers.CharField(source="pool_id", read_only=True)
    proof = ProofSerializer(source="*", read_only=True)

    class Meta:
        model = ConsentRecord
        fields = ["id", "phone", "status", "scope", "sender", "pool", "source", "proof", "erased_at", "created_at"]


class ConsentWriteSerializer(_ScopeFields):
    phone = serializers.RegexField(_E164, max_length=16, help_text="The number, E.164.")
    status = serializers.ChoiceField(choices=ConsentRecord.Status.choices)
    source = serializers.ChoiceField(choices=[c for c in ConsentRecord.Source.choices if c[0] != "erasure"],
                                     default=ConsentRecord.Source.API)
    consent_text = serializers.CharField(required=False, allow_blank=True, max_length=5000,
                                         help_text="The words the person agreed to.")
    consent_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    consented_at = serializers.DateTimeField(required=False, help_text="When; now by default.")
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=500)
    page_url = serializers.URLField(required=False, allow_blank=True, max_length=2000)


class ConsentFilterSerializer(serializers.Serializer):
    phone = serializers.RegexField(_E164, required=False, max_length=16, help_text="Only this number's records.")
    status = serializers.ChoiceField(choices=ConsentRecord.Status.choices, required=False)


class SuppressionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    pool = serializers.CharField(source="pool_id", read_only=True)

    class Meta:
        model = Suppression
        fields = ["id", "phone", "scope", "sender", "pool", "source", "reason", "created_at"]


class SuppressionWriteSerializer(_ScopeFields):
    phone = serializers.RegexField(_E164, max_length=16)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)


class SuppressionFilterSerializer(serializers.Serializer):
    phone = serializers.RegexField(_E164, required=False, max_length=16)


class ErasureWriteSerializer(JsonBodySerializer):
    phone = serializers.RegexField(_E164, max_length=16, help_text="The number to erase, E.164.")


class ErasureSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = ErasureRequest
        fields = ["id", "phone_hash", "counts", "created_at"]


@extend_schema_view(get=extend_schema(
    operation_id="consents_list", summary="List consent records", parameters=[ConsentFilterSerializer],
    description="The consent ledger, newest first: every opt-in and opt-out with its scope, source and proof. A "
                "number's state for a send is its latest record among the scopes that cover the send (the tenant, "
                "the sender, the pool). Filter by `phone` and `status`. Needs the `compliance` scope."))
class ConsentListView(ApiListView):
    """The tenant's consent ledger (GET), or add a record to it (POST)."""

    required_scope = Scope.COMPLIANCE
    serializer_class = ConsentSerializer
    pagination_class = CursorPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ConsentRecord.objects.none()
        query = ConsentFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.consent_list(tenant=self.request.auth.tenant, **query.validated_data)

    @extend_schema(
        operation_id="consents_create", summary="Record a consent", request=ConsentWriteSerializer,
        responses={201: ConsentSerializer, **api_errors(ConsentInvalid)},
        description="Append an opt-in or opt-out to the ledger, with its proof (the text agreed to and its version, "
                    "when, IP, user agent, page). Marketing needs an `opted_in` record that covers the send, or it "
                    "is 422 `consent_required`; an `opted_out` one refuses every send it covers (422 "
                    "`recipient_opted_out`). Emits `contact.opted_in` / `contact.opted_out`. Audited. Needs the "
                    "`compliance` scope.",
        examples=[OpenApiExample("Checkout opt-in", request_only=True, value={
            "phone": "+14155550100", "status": "opted_in", "source": "checkout",
            "consent_text": "Send me offers by SMS. Reply STOP to opt out.", "consent_version": "2026-01",
            "ip": "203.0.113.7", "page_url": "https://shop.example.com/checkout"})])
    def post(self, request):
        data = ConsentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        record = consent_services.consent_record(
            tenant=request.auth.tenant, phone=v["phone"], status=v["status"], source=v["source"], scope=v["scope"],
            sender=v.get("sender", ""), pool_id=v.get("pool", ""), actor=actor_for(request),
            proof=Proof(text=v.get("consent_text", ""), version=v.get("consent_version", ""),
                        at=v.get("consented_at"), ip=v.get("ip"), user_agent=v.get("user_agent", ""),
                        page_url=v.get("page_url", "")))
        return Response(ConsentSerializer(record).data, status=status.HTTP_201_CREATED)


@extend_schema_view(get=extend_schema(
    operation_id="suppressions_list", summary="List suppressions", parameters=[SuppressionFilterSerializer],
    description="Numbers you must not message, newest first, whatever the consent ledger says; an erased number "
                "shows no `phone`, only that it stays suppressed. Needs the `compliance` scope."))
class SuppressionListView(ApiListView):
    """The tenant's suppressions (GET), or suppress a number (POST)."""

    required_scope = Scope.COMPLIANCE
    serializer_class = SuppressionSerializer
    pagination_class = CursorPagination
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Suppression.objects.none()
        query = SuppressionFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.suppression_list(tenant=self.request.auth.tenant, **query.validated_data)

    @extend_schema(
        operation_id="suppressions_create", summary="Suppress a number", request=SuppressionWriteSerializer,
        responses={201: SuppressionSerializer, **api_errors(ConsentInvalid)},
        description="Every send the scope covers is refused with 422 `recipient_opted_out` until the suppression is "
                    "deleted. The same number and scope again answers the existing entry. Audited. Needs the "
                    "`compliance` scope.",
        examples=[OpenApiExample("Tenant-wide", request_only=True,
                                 value={"phone": "+14155550100", "reason": "Asked by phone not to be contacted"})])
    def post(self, request):
        data = SuppressionWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        row = consent_services.suppression_add(tenant=request.auth.tenant, phone=v["phone"], scope=v["scope"],
                                               sender=v.get("sender", ""), pool_id=v.get("pool", ""),
                                               reason=v.get("reason", ""), actor=actor_for(request))
        return Response(SuppressionSerializer(row).data, status=status.HTTP_201_CREATED)


class SuppressionDetailView(ApiView):
    """Lift one suppression."""

    required_scope = Scope.COMPLIANCE
    serializer_class = SuppressionSerializer

    @extend_schema(operation_id="suppressions_destroy", summary="Delete a suppression",
                   parameters=[OpenApiParameter("suppression_id", str, OpenApiParameter.PATH)],
                   responses={204: None, **api_errors(SuppressionNotFound)},
                   description="The number may be messaged again in that scope (the consent ledger still applies); "
                               "lifting an erasure's entry lets the erased number be messaged again. Audited. Needs "
                               "the `compliance` scope.")
    def delete(self, request, suppression_id: str):
        consent_services.suppression_delete(tenant=request.auth.tenant, public_id=suppression_id,
                                            actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ErasureRequestView(ApiView):
    """Erase what the account holds about one number."""

    required_scope = Scope.COMPLIANCE
    serializer_class = ErasureSerializer

    @extend_schema(
        operation_id="erasure_requests_create", summary="Erase a number's data", request=ErasureWriteSerializer,
        responses={201: ErasureSerializer, **api_errors(ConsentInvalid)},
        description="Redacts the bodies of your messages to the number and of its inbound messages, and blanks the "
                    "number and the proof in your consent records. A keyed hash of the number stays as a "
                    "tenant-wide suppression, so sends to it are still refused (`recipient_opted_out`). What "
                    "billing needs (recipient, price, parts) is kept. `counts` says what was redacted. Audited. "
                    "Needs the `compliance` scope.",
        examples=[OpenApiExample("Erase", request_only=True, value={"phone": "+14155550100"})])
    def post(self, request):
        data = ErasureWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = retention.erasure_request_create(tenant=request.auth.tenant, phone=data.validated_data["phone"],
                                                actor=actor_for(request))
        return Response(ErasureSerializer(done).data, status=status.HTTP_201_CREATED)
