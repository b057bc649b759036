"""Portal pages for webhooks: endpoints (create, edit, enable/disable, test, rotate, delete), the callback
secret, and recent deliveries with their attempts and a resend button.

Seeing the pages needs `messages.view`; every change needs `api_keys.manage` (webhook secrets are
credentials like API keys, and the roles that manage keys manage these). Secrets are rendered in the
answer to the POST that made them and kept nowhere else, so they show once.
"""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from accounts.portal.decorators import actor_for, add_domain_error, portal_view, safe_next
from smsportal.errors import DomainError
from smsportal.events import selectors, services
from smsportal.events.models import WebhookEndpoint
from smsportal.events.portal.forms import WebhookEndpointForm

VIEW, MANAGE = "messages.view", "api_keys.manage"
RECENT = 25


def _recent_deliveries(request: HttpRequest, **filters) -> list:
    return list(selectors.webhook_delivery_list(tenant=request.tenant, **filters)[:RECENT])


@portal_view(VIEW, methods=("GET", "HEAD"))
def webhooks(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/webhooks/list.html", {
        "endpoints": selectors.webhook_endpoint_list(tenant=request.tenant),
        "callback_secret": selectors.webhook_callback_secret_get(tenant=request.tenant),
        "deliveries": _recent_deliveries(request),
    })


def _secret_page(request: HttpRequest, *, secret: str, title: str, subject: str, back: str,
                 endpoint: WebhookEndpoint | None = None, status: int = 200) -> HttpResponse:
    return render(request, "portal/webhooks/secret.html", {
        "secret": secret, "title": title, "subject": subject, "back": back, "endpoint": endpoint,
    }, status=status)


@portal_view(MANAGE)
@never_cache
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.webhook_endpoint_create(tenant=request.tenant, actor=actor_for(request),
                                                                **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            return _secret_page(request, secret=secret, title="Your new webhook endpoint", endpoint=endpoint,
                                subject=endpoint.url, back=reverse("portal:webhook-endpoint", args=[endpoint.public_id]),
                                status=201)
    return render(request, "portal/webhooks/create.html", {"form": form})


@portal_view(VIEW, post=MANAGE)
def endpoint_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    """The endpoint, its recent deliveries, and (POST) its edit form."""
    endpoint = selectors.webhook_endpoint_get(tenant=request.tenant, public_id=endpoint_id)
    initial = {"url": endpoint.url, "description": endpoint.description, "events": endpoint.events,
               "enabled": endpoint.enabled}
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.webhook_endpoint_update(tenant=request.tenant, endpoint=endpoint, actor=actor_for(request),
                                             **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "The endpoint was saved.")
            return redirect("portal:webhook-endpoint", endpoint.public_id)
    return render(request, "portal/webhooks/endpoint.html", {
        "endpoint": endpoint, "form": form, "deliveries": _recent_deliveries(request, endpoint=endpoint.public_id),
    })


@portal_view(MANAGE, methods=("POST",))
def endpoint_enabled(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.webhook_endpoint_get(tenant=request.tenant, public_id=endpoint_id)
    enabled = request.POST.get("enabled") == "on"
    services.webhook_endpoint_update(tenant=request.tenant, endpoint=endpoint, actor=actor_for(request), enabled=enabled)
    messages.success(request, f"{endpoint.url} is {'enabled' if enabled else 'disabled'}.")
    return redirect(safe_next(request, "portal:webhooks"))


@portal_view(MANAGE, methods=("POST",))
def endpoint_test(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    """Send a signed webhook.test event now; only the status, latency and error class are shown."""
    endpoint = selectors.webhook_endpoint_get(tenant=request.tenant, public_id=endpoint_id)
    result = services.webhook_endpoint_test(tenant=request.tenant, endpoint=endpoint)
    if not result.error_class:
        messages.success(request, f"The test event was accepted: {result.status_code} in {result.latency_ms} ms.")
    else:
        answered = f"answered {result.status_code}" if result.status_code else "no answer"
        messages.error(request, f"The test event failed ({result.error_class}, {answered}).")
    return redirect("portal:webhook-endpoint", endpoint.public_id)


@portal_view(MANAGE)
@never_cache
def endpoint_rotate(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.webhook_endpoint_get(tenant=request.tenant, public_id=endpoint_id)
    if request.method == "POST":
        endpoint, secret = services.webhook_endpoint_rotate_secret(tenant=request.tenant, endpoint=endpoint,
                                                                   actor=actor_for(request))
        return _secret_page(request, secret=secret, title="New signing secret", subject=endpoint.url,
                            endpoint=endpoint, back=reverse("portal:webhook-endpoint", args=[endpoint.public_id]))
    return render(request, "portal/webhooks/rotate.html", {"endpoint": endpoint})


@portal_view(MANAGE)
def endpoint_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.webhook_endpoint_get(tenant=request.tenant, public_id=endpoint_id)
    if request.method == "POST":
        services.webhook_endpoint_delete(tenant=request.tenant, endpoint=endpoint, actor=actor_for(request))
        messages.success(request, f"The endpoint {endpoint.url} was deleted.")
        return redirect("portal:webhooks")
    return render(request, "portal/webhooks/delete.html", {"endpoint": endpoint})


@portal_view(MANAGE)
@never_cache
def callback_secret(request: HttpRequest) -> HttpResponse:
    """The secret that signs per-message callback_url deliveries: made, or rotated, and shown once."""
    current = selectors.webhook_callback_secret_get(tenant=request.tenant)
    if request.method == "POST":
        _row, secret = services.webhook_callback_secret_rotate(tenant=request.tenant, actor=actor_for(request))
        return _secret_page(request, secret=secret, title="Callback signing secret",
                            subject="Deliveries to each message's callback_url", back=reverse("portal:webhooks"))
    return render(request, "portal/webhooks/callback_secret.html", {"current": current})


@portal_view(MANAGE, methods=("POST",))
def delivery_resend(request: HttpRequest, delivery_id: str) -> HttpResponse:
    delivery = selectors.webhook_delivery_get(tenant=request.tenant, public_id=delivery_id)
    try:
        services.webhook_delivery_resend(tenant=request.tenant, delivery=delivery)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The {delivery.event_type} event is being sent again (same webhook-id).")
    return redirect(safe_next(request, "portal:webhooks"))
