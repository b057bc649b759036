"""Tenant settings: the audit log, the security policy and the HELP reply."""
from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode

from accounts import selectors, services
from accounts.portal.decorators import actor_for, portal_view
from accounts.portal.forms import AuditFilterForm, HelpReplyForm, RequireTwoFactorForm

AUDIT_PAGE_SIZE = 50


@portal_view("audit.view", methods=("GET", "HEAD"))
def audit_log(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    form = AuditFilterForm(request.GET, actions=selectors.audit_action_list(tenant=tenant))
    action = form.cleaned_data["action"] if form.is_valid() else None
    page = Paginator(selectors.audit_event_list(tenant=tenant, action=action), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = urlencode({"action": action}) if action else ""
    return render(request, "portal/audit_log.html", {"form": form, "page": page, "action": action or "", "query": query})


@portal_view("security.manage")
def security(request: HttpRequest) -> HttpResponse:
    """Two forms on one page: the 2FA policy, and (posted with `form=help_reply`) the HELP reply."""
    tenant = request.tenant
    posted = request.POST.get("form", "require_2fa") if request.method == "POST" else None
    form = RequireTwoFactorForm(
        request.POST if posted == "require_2fa" else None, initial={"require_2fa": tenant.require_2fa}
    )
    help_form = HelpReplyForm(request.POST if posted == "help_reply" else None,
                              initial={"help_reply": tenant.help_reply})
    if posted == "help_reply" and help_form.is_valid():
        services.tenant_set_help_reply(tenant=tenant, help_reply=help_form.cleaned_data["help_reply"],
                                       actor=actor_for(request))
        messages.success(request, "HELP reply saved." if tenant.help_reply else "HELP now gets the default reply.")
        return redirect("portal:security")
    if posted == "require_2fa" and form.is_valid():
        required = form.cleaned_data["require_2fa"]
        services.tenant_set_require_2fa(tenant=tenant, required=required, actor=actor_for(request))
        messages.success(request, "Every member now needs two-factor authentication." if required
                         else "Two-factor authentication is now optional for members.")
        return redirect("portal:security")
    members = selectors.membership_list_with_2fa(tenant=tenant)
    return render(request, "portal/security.html", {"form": form, "help_form": help_form,
                                                    "members_without_2fa": [m for m in members if not m.has_2fa]})
