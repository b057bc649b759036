"""/v1 views of compliance: the country rules (any valid API key: they are the platform's published rules) and
the tenant's geo permissions (the `compliance` scope)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.metadata import SimpleMetadata
from rest_framework.response import Response

from accounts.api.views import actor_for
from accounts.roles import Scope
from compliance import countries, geo
from compliance.api import serializers as s
from compliance.errors import CountryNotFound, InvalidCountry
from smsportal.api.schema import api_errors
from smsportal.api.views import ApiView


class NameOnlyMetadata(SimpleMetadata):
    def determine_metadata(self, request, view) -> dict:
        return {"name": view.get_view_name(), "description": view.get_view_description()}


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


class GeoPermissionsView(ApiView):
    """The destination countries the account may send to, and changes to them."""

    required_scope = Scope.COMPLIANCE
    serializer_class = s.GeoPermissionsSerializer
    pagination_class = None
    # OPTIONS without DRF's form description: SimpleMetadata calls get_object() for a PUT, and this view has no
    # object (the permissions are the tenant's); it answers the name and description only.
    metadata_class = NameOnlyMetadata

    @extend_schema(operation_id="geo_permissions_retrieve", summary="Show the geo permissions",
                   description="Every country of the rules (and any other you chose) with whether a send there is "
                               "accepted now (`status`). Without a choice, your home country and the low-risk "
                               "countries are on; high-risk ones stay off until you enable them, and countries "
                               "with `approval_required` need an account manager's approval after that. A send "
                               "elsewhere is 422 `destination_not_permitted`. Needs the `compliance` scope.")
    def get(self, request):
        tenant = request.auth.tenant
        return Response(s.GeoPermissionsSerializer(
            {"home_country": tenant.home_country, "data": geo.geo_permissions_list(tenant=tenant)}).data)

    @extend_schema(operation_id="geo_permissions_update", summary="Change the geo permissions",
                   description="Enable or disable the countries listed; the others stay as they are. Enabling a "
                               "country with `approval_required` asks an account manager (its status is "
                               "`pending_approval` until then). Audited. Needs the `compliance` scope.",
                   request=s.GeoPermissionsWriteSerializer,
                   responses={200: s.GeoPermissionsSerializer, **api_errors(InvalidCountry)},
                   examples=[OpenApiExample("Enable Nigeria", request_only=True,
                                            value={"countries": [{"country": "NG", "enabled": True}]})])
    def put(self, request):
        data = s.GeoPermissionsWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes: dict[str, bool] = {}
        for item in data.validated_data["countries"]:
            changes[item["country"].upper()] = item["enabled"]
        tenant = request.auth.tenant
        answer = geo.geo_permissions_set(tenant=tenant, changes=changes, actor=actor_for(request))
        return Response(s.GeoPermissionsSerializer({"home_country": tenant.home_country, "data": answer}).data)
