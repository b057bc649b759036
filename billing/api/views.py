"""/v1 views of billing: the balance, its ledger and the prices in force (scope `billing:read`)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from accounts.roles import Scope
from billing import hooks, selectors
from billing.api import serializers as s
from billing.models import LedgerEntry, Price
from smsportal.api.pagination import CursorPagination
from smsportal.api.schema import Code, api_errors
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
    """The prices in force for the tenant: its own list over the default."""

    required_scope = Scope.BILLING_READ
    serializer_class = s.PriceSerializer
    queryset = Price.objects.none()  # for the schema generator only
    pagination_class = None

    @extend_schema(summary="List your prices",
                   description="The per-segment prices in force today in your currency, as an array: your own "
                               "price list's (`own` true) and the default list's for every destination, type "
                               "and volume tier yours does not price. A price by `prefix` beats one by "
                               "`country` for the numbers it matches. `country` (ISO 3166 alpha-2) gives that "
                               "country's prices and the prefixes of its calling code. Needs the `billing:read` "
                               "scope.",
                   parameters=[s.PricingQuerySerializer], responses={200: s.PriceSerializer(many=True),
                                                                     **api_errors(INVALID_COUNTRY)})
    def get(self, request):
        query = s.PricingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        prices = selectors.prices_effective(tenant=request.auth.tenant,
                                            country=query.validated_data.get("country") or None)
        return Response(s.PriceSerializer(prices, many=True).data)
