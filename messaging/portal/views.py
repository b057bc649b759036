"""Portal pages for messaging: the message log and detail, a test message with its live quote, and templates."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import urlencode

from accounts.portal.decorators import add_domain_error, portal_view
from accounts.services import ApiKeyMode
from messaging import accept, selectors, services
from messaging.models import MessageTemplate
from messaging.portal.forms import CONTENT_TEMPLATE, MessageFilterForm, MessageSendForm, QuoteForm, TemplateForm
from messaging.portal.quote import quote_json, quote_panel
from smsportal.errors import DomainError

PAGE_SIZE = 50


# --- Messages ----------------------------------------------------------------------------


@portal_view("messages.view", methods=("GET", "HEAD"))
def message_list(request: HttpRequest) -> HttpResponse:
    form = MessageFilterForm(request.GET)
    page = Paginator(selectors.message_search(tenant=request.tenant, **form.filters()), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = form.query_items()
    return render(request, "portal/messages/list.html", {
        "form": form, "page": page, "query": urlencode(query), "filtered": bool(query), "noun": "messages",
    })


@portal_view("messages.view", methods=("GET", "HEAD"))
def message_detail(request: HttpRequest, message_id: str) -> HttpResponse:
    message = selectors.message_get(tenant=request.tenant, public_id=message_id, with_events=True)
    return render(request, "portal/messages/detail.html", {
        "message": message, "cancelable": selectors.message_can_cancel(message=message),
    })


@portal_view("messages.send", methods=("POST",))
def message_cancel(request: HttpRequest, message_id: str) -> HttpResponse:
    message = selectors.message_get(tenant=request.tenant, public_id=message_id)
    try:
        services.message_cancel(tenant=request.tenant, message=message)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The message was canceled: it will not be sent.")
    return redirect("portal:message-detail", message_id=message.public_id)


@portal_view("messages.send")
def message_send(request: HttpRequest) -> HttpResponse:
    """A test message (carrier simulator, never billed). "Check length" re-renders the form with its quote."""
    tenant = request.tenant
    templates = list(selectors.template_list(tenant=tenant))
    if request.method == "POST" and request.POST.get("action") == "check":
        form = MessageSendForm(initial=_values(request.POST), templates=templates)
        return _send_page(request, form, templates)
    form = MessageSendForm(request.POST if request.method == "POST" else None, templates=templates,
                           initial=_initial(request, templates))
    if request.method == "POST" and form.is_valid():
        try:
            message = accept.message_send(tenant=tenant, api_key=None, mode=ApiKeyMode.TEST,
                                            **form.service_kwargs())
        except DomainError as exc:
            form.add_error(form.field_for(exc.field), exc.message)
        else:
            messages.success(request, "Test message accepted: it goes to the carrier simulator and is not billed.")
            return redirect("portal:message-detail", message_id=message.public_id)
    return _send_page(request, form, templates)


def _send_page(request: HttpRequest, form: MessageSendForm, templates: list[MessageTemplate]) -> HttpResponse:
    panel = {}
    if request.method == "POST":
        panel = quote_panel(tenant=request.tenant, form=QuoteForm(request.POST, templates=templates))
    return render(request, "portal/messages/send.html", {
        "form": form, "panel": panel, "has_templates": bool(templates),
        "receipt_delay": settings.SIMULATOR_RECEIPT_DELAY,
    })


def _initial(request: HttpRequest, templates: list[MessageTemplate]) -> dict:
    """`?template=name` (the templates page's "Send" link) starts the form on that template."""
    name = request.GET.get("template", "")
    return {"content": CONTENT_TEMPLATE, "template": name} if name in {t.name for t in templates} else {}


def _values(data: QueryDict) -> dict:
    # An unchecked checkbox is absent from a POST; everything else is shown back as typed.
    return {**data.dict(), "smart_encoding": "smart_encoding" in data}


@portal_view("messages.send", methods=("POST",))
def message_quote(request: HttpRequest) -> JsonResponse:
    """JSON for quote.js: the quote's figures and the panel's HTML, or `error` when the body cannot be quoted yet.

    Always 200: half-typed input (a template without its variables) is the normal state of a live
    check, not a failed request, and the browser would log every 4xx as a console error.
    """
    form = QuoteForm(request.POST, templates=list(selectors.template_list(tenant=request.tenant)))
    panel = quote_panel(tenant=request.tenant, form=form)
    payload = {**quote_json(panel), "summary": panel.get("summary", ""),
               "html": render_to_string("portal/messages/_quote.html", {"panel": panel})}
    return JsonResponse(payload)


# --- Templates ---------------------------------------------------------------------------


@portal_view("messages.view", methods=("GET", "HEAD"))
def template_list(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/messages/templates.html", {
        "templates": selectors.template_list(tenant=request.tenant),
    })


@portal_view("messages.send")
def template_create(request: HttpRequest) -> HttpResponse:
    form = TemplateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            template = services.template_create(tenant=request.tenant, **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"The template “{template.name}” was created.")
            return redirect("portal:templates")
    return render(request, "portal/messages/template_form.html", {"form": form, "template": None})


@portal_view("messages.send")
def template_edit(request: HttpRequest, template_id: str) -> HttpResponse:
    template = selectors.template_get(tenant=request.tenant, public_id=template_id)
    name = template.name  # template_update sets fields before it saves; a refused save leaves them changed
    initial = {field: getattr(template, field) for field in TemplateForm.base_fields}
    form = TemplateForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.template_update(tenant=request.tenant, template=template, **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"The template “{template.name}” was saved.")
            return redirect("portal:templates")
    return render(request, "portal/messages/template_form.html", {"form": form, "template": template, "name": name})


@portal_view("messages.send")
def template_delete(request: HttpRequest, template_id: str) -> HttpResponse:
    template = selectors.template_get(tenant=request.tenant, public_id=template_id)
    if request.method == "POST":
        services.template_delete(tenant=request.tenant, template=template)
        messages.success(request, f"The template “{template.name}” was deleted.")
        return redirect("portal:templates")
    return render(request, "portal/messages/template_delete.html", {"template": template})
