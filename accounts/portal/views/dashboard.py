"""The dashboard (or the no-team page) and switching the active tenant."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_otp import user_has_device

from accounts import selectors
from accounts.portal.decorators import portal_view
from accounts.portal.panels import dashboard_panels_context


def dashboard(request: HttpRequest) -> HttpResponse:
    if request.membership is None:
        # Staff, or someone whose last membership was removed: not an error.
        return render(request, "portal/no_team.html")
    return _dashboard(request)


@portal_view("dashboard.view", methods=("GET", "HEAD"))
def _dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/dashboard.html", {
        "summary": selectors.tenant_summary(tenant=request.tenant),
        "has_2fa": user_has_device(request.user, confirmed=True),
        "me_url": request.build_absolute_uri("/v1/me"),
        **dashboard_panels_context(request),
    })


@require_POST
def switch_tenant(request: HttpRequest) -> HttpResponse:
    """Only a tenant the person belongs to; any other slug is simply not found."""
    membership = selectors.membership_for_user(user=request.user, tenant_slug=request.POST.get("tenant", ""))
    request.session["tenant_id"] = membership.tenant_id
    return redirect("portal:dashboard")
