"""Portal view plumbing: the permission decorator, the audit actor, domain errors on forms, safe redirects."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import services
from accounts.roles import role_can
from smsportal.errors import DomainError


def portal_view(
    permission: str, *, post: str | None = None, methods: Iterable[str] = ("GET", "HEAD", "POST")
) -> Callable:
    """Require an active membership whose role holds `permission` (`post` for POST, when given).

    No membership: to the dashboard, which explains there is no team. A refused
    role: PermissionDenied, rendered as the styled 403 page. The middleware has
    already required sign-in and the second factor.
    """
    allowed = tuple(methods)
    # Fail at import on a typo in a permission name, not at the first request.
    for name in filter(None, (permission, post)):
        role_can(None, name)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in allowed:
                return HttpResponseNotAllowed([m for m in allowed if m != "HEAD"])
            if request.membership is None:
                return redirect("portal:dashboard")
            needed = post if post and request.method == "POST" else permission
            if not role_can(request.membership.role, needed):
                raise PermissionDenied("Your role in this team does not allow this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def actor_for(request: HttpRequest) -> services.Actor:
    return services.Actor(user=request.user, ip=services.ip_text(getattr(request, "client_ip", None)))


def ip_for(request: HttpRequest) -> str | None:
    return services.ip_text(getattr(request, "client_ip", None))


def add_domain_error(form: forms.Form, error: DomainError) -> None:
    """Show a service's refusal next to the field it names, else at the top of the form."""
    form.add_error(error.field if error.field in form.fields else None, error.message)


def safe_next(request: HttpRequest, default: str = "portal:dashboard") -> str:
    """The `next` from the form or query string when it stays on this site, else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(default)
