"""/v1 views of billing: the balance, its ledger, the prices in force, the savings calculator and the invoices
(scope `billing:read`)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from accounts.roles import Scope
from billing import hooks, savings, selectors
from billing.api import serializers as s
from billing.errors import SavingsInvalid
from billing.models import Invoice, LedgerEntry, Price
from billing.pdf import pdf_response
from smsportal.api.pagination import CursorPagination
from smsportal.api.schema import NOT_FOUND, Code, api_errors
from smsportal.api.views import ApiListView, ApiView

INVALID_COUNTRY = Code(400, "invalid_country", "`country` is not an ISO 3166 alpha-2 code we know (field `country`).")


class BalanceView(ApiView):
    """The tenant's balance: what it may still spend, what is held, its credit limit."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.BalanceSerializer

    @extend_schema(summary="Show your balance",
                   description="Your prepaid balance in your account's currency, as string decimals: `available` "
                               "is what live sends may still hold (balance, less what is held for messages not "
                               "yet sent, plus your credit limit). An account never topped up shows zeros. Needs "
                               "the `billing:read` scope.",
                   examples=[OpenApiExample("Prepaid", response_only=True, value={
                       "available": "41.2500", "balance": "41.3000", "reserved": "0.0500",
                       "credit_limit": "0.0000", "currency": "EUR"})])
    def get(self, request):
        return Response(s.BalanceSerializer(selectors.balance_figures(tenant=request.auth.tenant)).data)


class TransactionListView(ApiListView):
    """The tenant's ledger, newest first; message ids resolved in one query per page."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.TransactionSerializer
    pagination_class = CursorPagination  # -created_at, -id
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LedgerEntry.objects.none()
        return selectors.ledger_list(tenant=self.request.auth.tenant)

    @extend_schema(summary="List your balance transactions",
                   description="Every change of your balance, newest first: top-ups and adjustments (`amount`), "
                               "the hold of each live accept (`reserved_delta`), and each message's capture when "
                               "it goes to a carrier or release when it cannot (`message_id`). Amounts are "
                               "string decimals. Needs the `billing:read` scope.")
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        ids = hooks.message_public_ids(tenant=request.auth.tenant, keys={entry.message_id for entry in page})
        data = s.TransactionSerializer(page, many=True, context={"message_ids": ids}).data
        return self.get_paginated_response(data)


class PricingView(ApiView):
    """The prices in force for the tenant: its own lists over the default ones, of messages and of numbers."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.PricingSerializer
    queryset = Price.objects.none()  # for the schema generator only
    pagination_class = None

    @extend_schema(summary="List your prices",
                   description="The prices in force today in your currency. `messages`: the per-segment prices, "
                               "your own price list's (`own` true) and the default list's for every destination, "
                               "type and volume tier yours does not price; a price by `prefix` beats one by "
                               "`country` for the numbers it matches, and one naming an `operator` (MCC/MNC) "
                               "applies to that operator's numbers. `numbers`: the monthly rental and the lease "
                               "price per hour of each number type and country, yours over the default. "
                               "`country` (ISO 3166 alpha-2) gives that country's prices (and the message "
                               "prefixes of its calling code). Needs the `billing:read` scope.",
                   parameters=[s.PricingQuerySerializer], responses={200: s.PricingSerializer,
                                                                     **api_errors(INVALID_COUNTRY)})
    def get(self, request):
        query = s.PricingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant, country = request.auth.tenant, query.validated_data.get("country") or None
        return Response(s.PricingSerializer({
            "currency": selectors.balance_figures(tenant=tenant)["currency"],
            "messages": selectors.prices_effective(tenant=tenant, country=country),
            "numbers": selectors.number_prices_listed(tenant=tenant, country=country)}).data)


SAVINGS_ERRORS = (
    Code(422, "invalid_volumes", "`volumes` is not an object of country codes and SMS a month, or is empty "
                                 "(field `volumes`)."),
    Code(422, "too_many_countries", "More than 250 countries (field `volumes`)."),
    Code(422, "invalid_country", "A key of `volumes` is not an ISO 3166 alpha-2 code we know (field "
                                 "`volumes.<key>`)."),
    Code(422, "invalid_volume", "A volume is not a whole number of 0 or more (field `volumes.<country>`)."),
    Code(422, "volume_too_large", "A volume is over 1,000,000,000 SMS a month (field `volumes.<country>`)."),
    Code(422, "invalid_message_type", "`message_type` is not otp, transactional or marketing (field "
                                      "`message_type`)."),
    Code(422, "invalid_body", "The body is not a JSON object."),
)


class SavingsView(ApiView):
    """The savings calculator (billing/savings.py): the tenant's prices against the direct operators'."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.SavingsSerializer

    @extend_schema(
        summary="Estimate your savings",
        description="What SMS traffic costs at your prices against contracting each country's operators "
                    "directly at their list prices (a reference dataset with its source and date: "
                    "docs/billing.md). `volumes` are SMS (segments) a month per country, priced as "
                    "`message_type`; a country's volume also picks its volume tier. Without `volumes`, your own "
                    "charged messages of the last 30 days by country and type (or of `message_type` only). A "
                    "country that either side does not price is listed with `comparable: false` and left out "
                    "of the totals. Amounts are string decimals in your currency. Nothing is stored. Needs the "
                    "`billing:read` scope.",
        request=s.SavingsRequestSerializer,
        examples=[OpenApiExample("Two countries", request_only=True,
                                 value={"volumes": {"GB": 10000, "US": 50000}, "message_type": "otp"})],
        responses={200: s.SavingsSerializer, **api_errors(*SAVINGS_ERRORS)})
    def post(self, request):
        data = request.data  # {} without a body; JSON `null` is a body, and not an object
        if not isinstance(data, dict):
            raise SavingsInvalid("The body must be a JSON object.", code="invalid_body")
        tenant = request.auth.tenant
        # null is no type and no volumes (the schema allows neither): refused, not taken for "left out"
        message_type = (savings.savings_message_type_clean(data["message_type"], allow_none=False)
                        if "message_type" in data else None)
        if "volumes" not in data:
            estimate = savings.savings_estimate_usage(tenant=tenant, message_type=message_type)
        else:
            estimate = savings.savings_estimate(volumes=savings.savings_volumes_clean(data["volumes"]), tenant=tenant,
                                                message_type=message_type or savings.DEFAULT_MESSAGE_TYPE)
        return Response(s.SavingsSerializer(estimate).data)



class InvoiceListView(ApiListView):
    """The tenant's invoices, newest first (drafts are not shown)."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.InvoiceSerializer
    pagination_class = CursorPagination  # -created_at, -id
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        return selectors.invoice_list(tenant=self.request.auth.tenant)

    @extend_schema(summary="List your invoices",
                   description="Your monthly invoices, newest first: number, period (YYYY-MM, UTC), status "
                               "(issued, paid or void) and the totals as string decimals with 2 places. Needs "
                               "the `billing:read` scope.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InvoiceDetailView(ApiView):
    """One invoice with its numbered lines and the credit notes that correct it."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.InvoiceDetailSerializer

    @extend_schema(summary="Show an invoice",
                   description="One invoice with its numbered lines (messages by country and type, number "
                               "rental, leases, adjustments) and its credit notes. Needs the `billing:read` scope.",
                   responses={200: s.InvoiceDetailSerializer, **api_errors(NOT_FOUND)})
    def get(self, request, invoice_id):
        invoice = selectors.invoice_get(tenant=request.auth.tenant, public_id=invoice_id)
        return Response(s.InvoiceDetailSerializer(invoice).data)


class JsonErrorsNegotiation(BaseContentNegotiation):
    """The PDF view answers a PDF whatever `Accept` says (no 406), and its errors in JSON like every view's."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class InvoicePdfView(ApiView):
    """The invoice as a PDF download."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.InvoiceSerializer  # for the schema generator only: the answer is the PDF
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(summary="Download an invoice as PDF",
                   description="The invoice as an A4 PDF (`Content-Disposition: attachment`), the same document "
                               "as the portal's download. Needs the `billing:read` scope.",
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY, **api_errors(NOT_FOUND)})
    def get(self, request, invoice_id):
        invoice = selectors.invoice_get(tenant=request.auth.tenant, public_id=invoice_id)
        return pdf_response(invoice)
