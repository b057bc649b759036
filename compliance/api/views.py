"""/v1 views of compliance: the country rules (any valid API key: they are the platform's published rules)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from compliance import countries
from compliance.api import serializers as s
from compliance.errors import CountryNotFound
from smsportal.api.schema import api_errors
from smsportal.api.views import ApiView

_SCOPE_NOTE = "Any valid API key may read them: no scope is needed."


class CountryListView(ApiView):
    """Every country's rules, with the dataset version and the latest change."""

    required_scope = None  # the rules are the platform's, the same for every tenant: any key reads them
    serializer_class = s.CountryRuleListSerializer
    pagination_class = None

    @extend_schema(operation_id="countries_list", summary="List the country rules",
                   description="What each destination country allows and requires, as data to build on: sender "
                               "types, registration and templates, the opt-out text of marketing, the legal "
                               "quiet hours, the most parts, risk and whether an account manager must approve "
                               "you first. Each country carries its source and date; `version` is the dataset's "
                               "and `changed` the latest change (an account manager's override, or the dataset). "
                               "A summary of public guidelines, not legal advice. " + _SCOPE_NOTE)
    def get(self, request):
        meta, rules = countries.country_rules_meta(), countries.country_rules()
        return Response(s.CountryRuleListSerializer(
            {"version": meta.version, "changed": meta.changed, "data": list(rules.values())}).data)


class CountryDetailView(ApiView):
    """One country's rules."""

    required_scope = None  # as CountryListView
    serializer_class = s.CountryRuleSerializer

    @extend_schema(operation_id="countries_retrieve", summary="Show a country's rules",
                   description="One country's rules, as in the list; `iso` is an ISO 3166-1 alpha-2 code in "
                               "any case (`cn` or `CN`). A country without rules is 404 `not_found`. " + _SCOPE_NOTE,
                   parameters=[OpenApiParameter("iso", str, OpenApiParameter.PATH,
                                                description="ISO 3166-1 alpha-2, any case.")],
                   responses={200: s.CountryRuleSerializer, **api_errors(CountryNotFound)})
    def get(self, request, iso: str):
        rule = countries.country_rule(iso)
        if rule is None:
            raise CountryNotFound(field="iso")
        return Response(s.CountryRuleSerializer(rule).data)
