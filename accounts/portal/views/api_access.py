"""API access: keys (create, show the secret once, revoke) and the IP allowlist."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from accounts import selectors, services
from accounts.portal.decorators import actor_for, add_domain_error, portal_view
from accounts.portal.forms import AllowlistEntryForm, ApiKeyCreateForm
from accounts.roles import grantable_scopes
from smsportal.errors import DomainError


@portal_view("api_keys.view", methods=("GET", "HEAD"))
def api_keys(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/api_keys/list.html", {"api_keys": selectors.api_key_list(tenant=request.tenant)})


@portal_view("api_keys.manage")
@never_cache
def api_key_create(request: HttpRequest) -> HttpResponse:
    """The secret is rendered in the POST response itself and kept nowhere: it can never be shown again."""
    role = request.membership.role
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None, grantable=grantable_scopes(role))
    if request.method == "POST" and form.is_valid():
        try:
            api_key, secret = services.api_key_create(
                tenant=request.tenant, actor=actor_for(request), grantor_role=role, **form.cleaned_data
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            context = {"api_key": api_key, "secret": secret, "me_url": request.build_absolute_uri("/v1/me")}
            return render(request, "portal/api_keys/created.html", context, status=201)
    return render(request, "portal/api_keys/create.html", {"form": form})


@portal_view("api_keys.manage")
def api_key_revoke(request: HttpRequest, api_key_id: str) -> HttpResponse:
    api_key = selectors.api_key_get(tenant=request.tenant, public_id=api_key_id)
    if request.method == "POST":
        services.api_key_revoke(tenant=request.tenant, api_key=api_key, actor=actor_for(request))
        messages.success(request, f"The key “{api_key.name}” was revoked. Requests using it now get 401.")
        return redirect("portal:api-keys")
    return render(request, "portal/api_keys/revoke.html", {"api_key": api_key})


@portal_view("allowlist.view", post="allowlist.manage")
def ip_allowlist(request: HttpRequest) -> HttpResponse:
    """The list, and (POST) adding an entry, optionally bound to one key."""
    tenant = request.tenant
    keys = [key for key in selectors.api_key_list(tenant=tenant) if key.status == "active"]
    form = AllowlistEntryForm(request.POST if request.method == "POST" else None, api_keys=keys)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        key_id = data["api_key"]
        try:
            entry = services.ip_allowlist_add(
                tenant=tenant, cidr=data["cidr"], note=data["note"], actor=actor_for(request),
                api_key=selectors.api_key_get(tenant=tenant, public_id=key_id) if key_id else None,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"{entry.cidr} was added to the allowlist.")
            return redirect("portal:ip-allowlist")
    return render(request, "portal/ip_allowlist/list.html", {
        "entries": selectors.ip_allowlist_list(tenant=tenant), "form": form, "client_ip": request.client_ip,
    })


@portal_view("allowlist.manage")
def ip_allowlist_remove(request: HttpRequest, entry_id: str) -> HttpResponse:
    entry = selectors.ip_allowlist_get(tenant=request.tenant, public_id=entry_id)
    if request.method == "POST":
        services.ip_allowlist_remove(tenant=request.tenant, entry=entry, actor=actor_for(request))
        messages.success(request, f"{entry.cidr} was removed from the allowlist.")
        return redirect("portal:ip-allowlist")
    return render(request, "portal/ip_allowlist/remove.html", {"entry": entry})
