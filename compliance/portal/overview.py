"""Portal page: the compliance overview (role permission `compliance.view`): per country, what would block or
change an OTP, a transactional and a marketing message (compliance/overview.py)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.portal.decorators import portal_view
from compliance import countries, overview


@portal_view("compliance.view")
def compliance_overview(request: HttpRequest) -> HttpResponse:
    rows = overview.compliance_overview(tenant=request.tenant)
    wanted = (request.GET.get("q") or "").strip().lower()[:64]
    only_blocked = request.GET.get("blocked") == "1"
    if wanted:
        rows = [row for row in rows if wanted in row.name.lower() or wanted == row.iso.lower()]
    if only_blocked:
        rows = [row for row in rows if row.blocked_types]
    return render(request, "portal/compliance/overview.html", {
        "rows": rows, "q": wanted, "only_blocked": only_blocked, "types": overview.MESSAGE_TYPES,
        "meta": countries.country_rules_meta()})
