"""Portal page of geo permissions (role permission `compliance.manage`): where the team may send, and changes.

Enabling a high-risk country takes the owner (issue 12: high-risk destinations stay off until the owner enables
them); a country that needs approval goes to the account managers' queue once enabled."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.portal.decorators import actor_for, portal_view
from accounts.roles import Role
from compliance import geo
from smsportal.errors import DomainError


@portal_view("compliance.manage")
def geo_permissions(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    states = geo.geo_permissions_list(tenant=tenant)
    if request.method == "POST":
        wanted = set(request.POST.getlist("enabled"))
        changes = {state.country: state.country in wanted for state in states
                   if (state.country in wanted) != state.enabled}
        if any(enabled and next(s for s in states if s.country == iso).risk == "high"
               for iso, enabled in changes.items()) and request.membership.role != Role.OWNER:
            raise PermissionDenied("Only the owner may enable a high-risk destination.")
        try:
            geo.geo_permissions_set(tenant=tenant, changes=changes, actor=actor_for(request))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{len(changes)} countries changed." if changes else "Nothing changed.")
        return redirect("portal:geo-permissions")
    return render(request, "portal/compliance/geo/permissions.html", {
        "states": states, "home_country": tenant.home_country, "is_owner": request.membership.role == Role.OWNER})
