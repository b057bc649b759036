"""Team: members and their roles, invitations (sending, revoking, accepting)."""
from __future__ import annotations

from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import user_has_device

from accounts import errors, selectors, services
from accounts.portal.decorators import actor_for, add_domain_error, ip_for, portal_view
from accounts.portal.forms import InviteForm, RoleForm, SetPasswordForm
from accounts.roles import Role
from smsportal.errors import DomainError

TOKEN_PLACEHOLDER = "TOKEN-PLACEHOLDER"  # noqa: S105 - a URL placeholder, not a secret


@portal_view("team.view", methods=("GET", "HEAD"))
def team(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/team/team.html", {
        "members": selectors.membership_list_with_2fa(tenant=request.tenant),
        "invitations": selectors.invitation_list_pending(tenant=request.tenant),
        "roles": Role.choices,
    })


@portal_view("team.manage")
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = services.invitation_create(
                tenant=request.tenant, actor=actor_for(request), actor_role=request.membership.role,
                accept_url_template=_accept_url_template(request), **form.cleaned_data,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Invitation sent to {invitation.email}. It is valid for 7 days.")
            return redirect("portal:team")
    return render(request, "portal/team/invite.html", {"form": form})


def _accept_url_template(request: HttpRequest) -> str:
    # reverse() would percent-encode "{token}", so reverse a placeholder and swap it in.
    path = reverse("portal:invitation-accept", kwargs={"token": TOKEN_PLACEHOLDER})
    return request.build_absolute_uri(path).replace(TOKEN_PLACEHOLDER, "{token}")


@portal_view("team.manage")
def member_role(request: HttpRequest, membership_id: str) -> HttpResponse:
    member = selectors.membership_get(tenant=request.tenant, public_id=membership_id)
    form = RoleForm(request.POST if request.method == "POST" else None, initial={"role": member.role})
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_change_role(
                tenant=request.tenant, membership=member, role=form.cleaned_data["role"],
                actor=actor_for(request), actor_role=request.membership.role,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"{member.user.email} is now {Role(form.cleaned_data['role']).label.lower()}.")
            return redirect("portal:team")
    return render(request, "portal/team/member_role.html", {"member": member, "form": form})


@portal_view("team.manage")
def member_remove(request: HttpRequest, membership_id: str) -> HttpResponse:
    member = selectors.membership_get(tenant=request.tenant, public_id=membership_id)
    error = None
    if request.method == "POST":
        try:
            services.membership_remove(
                tenant=request.tenant, membership=member, actor=actor_for(request), actor_role=request.membership.role
            )
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"{member.user.email} was removed from {request.tenant.name}.")
            return redirect("portal:team" if member.user_id != request.user.pk else "portal:dashboard")
    return render(request, "portal/team/member_remove.html", {"member": member, "error": error})


@portal_view("team.manage")
def invitation_revoke(request: HttpRequest, invitation_id: str) -> HttpResponse:
    invitation = selectors.invitation_get(tenant=request.tenant, public_id=invitation_id)
    if request.method == "POST":
        services.invitation_revoke(tenant=request.tenant, invitation=invitation, actor=actor_for(request))
        messages.success(request, f"The invitation to {invitation.email} was revoked.")
        return redirect("portal:team")
    return render(request, "portal/team/invitation_revoke.html", {"invitation": invitation})


@sensitive_post_parameters("password1", "password2")
@never_cache
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the token is the credential. A new person sets a password; a signed-in invitee joins in one click."""
    try:
        invitation = services.invitation_find(token=token)
    except errors.InvalidInvitation as exc:
        return render(request, "portal/team/invitation_invalid.html", {"message": exc.message}, status=404)
    user = request.user
    context = {"invitation": invitation, "login_url": _login_url(request)}
    if user.is_authenticated:
        return _accept_signed_in(request, token, invitation, context)
    if selectors.user_exists(email=invitation.email):
        return render(request, "portal/team/invitation_accept.html", {**context, "state": "sign_in"})
    form = SetPasswordForm(request.POST if request.method == "POST" else None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        membership = _accept(request, form, token=token, password=form.cleaned_data["password1"])
        if membership is not None:
            auth.login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            return _joined(request, membership)
    return render(request, "portal/team/invitation_accept.html", {**context, "state": "new_account", "form": form})


def _accept_signed_in(request: HttpRequest, token: str, invitation, context: dict) -> HttpResponse:
    user = request.user
    if user.email.lower() != invitation.email:
        return render(request, "portal/team/invitation_accept.html", {**context, "state": "other_user"})
    if not user.is_verified() and user_has_device(user, confirmed=True):
        return redirect(f"{reverse('portal:2fa-verify')}?{urlencode({'next': request.path})}")
    error = None
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=user, ip=ip_for(request))
        except DomainError as exc:
            error = exc.message
        else:
            return _joined(request, membership)
    return render(request, "portal/team/invitation_accept.html", {**context, "state": "join", "error": error})


def _accept(request: HttpRequest, form, **kwargs):
    try:
        return services.invitation_accept(ip=ip_for(request), **kwargs)
    except DomainError as exc:
        add_domain_error(form, exc)
        return None


def _joined(request: HttpRequest, membership) -> HttpResponse:
    request.session["tenant_id"] = membership.tenant_id
    messages.success(request, f"Welcome to {membership.tenant.name}! You joined as {membership.get_role_display().lower()}.")
    return redirect("portal:dashboard")


def _login_url(request: HttpRequest) -> str:
    return f"{reverse('portal:login')}?{urlencode({'next': request.path})}"
