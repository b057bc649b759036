"""Portal pages of the consent ledger and the suppressions (compliance.view to see and export; compliance.manage to
add, import, delete and change the settings): the same services as /v1/consents and /v1/suppressions."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.portal.decorators import actor_for, add_domain_error, portal_view
from accounts.roles import role_can
from compliance import consent_services, selectors
from compliance.models import ConsentRecord, ConsentScope
from smsportal.errors import DomainError

PAGE_SIZE = 50
IMPORT_MAX_BYTES = 2 * 1024 * 1024
SCOPES = [(ConsentScope.TENANT, "Every sender"), (ConsentScope.SENDER, "One sender number"),
          (ConsentScope.POOL, "One number pool")]


class ConsentFilterForm(forms.Form):
    phone = forms.CharField(required=False, max_length=16)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *ConsentRecord.Status.choices])


class ConsentForm(forms.Form):
    phone = forms.CharField(max_length=16, help_text="E.164, e.g. +14155550100.")
    status = forms.ChoiceField(choices=ConsentRecord.Status.choices)
    scope = forms.ChoiceField(choices=SCOPES, initial=ConsentScope.TENANT)
    sender = forms.CharField(required=False, max_length=16, help_text="For scope: one sender number.")
    pool = forms.CharField(required=False, max_length=32, help_text="For scope: one pool (its id, pool_…).")
    consent_text = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}),
                                   label="Consent text", help_text="The words the person agreed to.")
    consent_version = forms.CharField(required=False, max_length=64)


class SuppressionForm(forms.Form):
    phone = forms.CharField(max_length=16, help_text="E.164, e.g. +14155550100.")
    scope = forms.ChoiceField(choices=SCOPES, initial=ConsentScope.TENANT)
    sender = forms.CharField(required=False, max_length=16)
    pool = forms.CharField(required=False, max_length=32)
    reason = forms.CharField(required=False, max_length=300)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row; at most 10,000 rows.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError("The file is larger than 2 MB.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None


class SettingsForm(forms.Form):
    opt_out_scope = forms.ChoiceField(
        choices=[(ConsentScope.SENDER, "The number it was sent to (and its pool)"),
                 (ConsentScope.TENANT, "Every sender of this account")], label="A STOP applies to")
    retention_days = forms.IntegerField(min_value=1, max_value=3650, label="Keep message bodies for (days)")


def _can_manage(request) -> bool:
    return role_can(request.membership.role, "compliance.manage")


def _csv_response(body: str, name: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _imported(request, form: ImportForm, importer) -> bool:
    if not form.is_valid():
        return False
    try:
        result = importer(tenant=request.tenant, data=form.cleaned_data["file"], actor=actor_for(request))
    except DomainError as exc:
        form.add_error("file", exc.message)
        return False
    if result.errors:
        form.add_error("file", "Nothing imported: " + "; ".join(result.errors[:10]))
        return False
    messages.success(request, f"{result.created} rows imported.")
    return True


@portal_view("compliance.view", post="compliance.manage")
def consents(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    action = request.POST.get("action", "") if request.method == "POST" else ""
    form = ConsentForm(request.POST if action == "add" else None)
    upload = ImportForm(request.POST if action == "import" else None, request.FILES if action == "import" else None)
    current = consent_services.consent_settings_get(tenant=tenant)
    settings_form = SettingsForm(request.POST if action == "settings" else None, initial={
        "opt_out_scope": current.opt_out_scope, "retention_days": current.retention_days})
    if action == "add" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_services.consent_record(
                tenant=tenant, phone=data["phone"], status=data["status"], source=ConsentRecord.Source.PORTAL,
                scope=data["scope"], sender=data["sender"], pool_id=data["pool"], actor=actor_for(request),
                proof=consent_services.Proof(text=data["consent_text"], version=data["consent_version"],
                                             user_agent=request.headers.get("User-Agent", "")))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Consent recorded.")
            return redirect("portal:consents")
    if action == "import" and _imported(request, upload, consent_services.consents_import):
        return redirect("portal:consents")
    if action == "settings" and settings_form.is_valid():
        try:
            consent_services.consent_settings_set(tenant=tenant, actor=actor_for(request), **settings_form.cleaned_data)
        except DomainError as exc:
            add_domain_error(settings_form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("portal:consents")
    filters = ConsentFilterForm(request.GET)
    query = filters.cleaned_data if filters.is_valid() else {}
    rows = _filtered(tenant, query)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/compliance/consents/list.html", {
        "page": page, "filters": filters, "form": form, "upload": upload, "settings_form": settings_form,
        "can_manage": _can_manage(request), "portal_section": "consents",
        "query": "&".join(f"{k}={v}" for k, v in query.items() if v)})


def _filtered(tenant, query: dict):
    phone = query.get("phone", "")
    try:
        phone = consent_services.phone_e164(phone) if phone else ""
    except DomainError:
        return selectors.consent_list(tenant=tenant).none()
    return selectors.consent_list(tenant=tenant, phone=phone, status=query.get("status", ""))


@portal_view("compliance.view", methods=("GET", "HEAD"))
def consents_export(request: HttpRequest) -> HttpResponse:
    filters = ConsentFilterForm(request.GET)
    rows = _filtered(request.tenant, filters.cleaned_data if filters.is_valid() else {})
    return _csv_response(consent_services.consents_csv(rows.iterator()), "consents.csv")


@portal_view("compliance.view", post="compliance.manage")
def suppressions(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    action = request.POST.get("action", "") if request.method == "POST" else ""
    form = SuppressionForm(request.POST if action == "add" else None)
    upload = ImportForm(request.POST if action == "import" else None, request.FILES if action == "import" else None)
    if action == "add" and form.is_valid():
        data = form.cleaned_data
        try:
            consent_services.suppression_add(tenant=tenant, phone=data["phone"], scope=data["scope"],
                                             sender=data["sender"], pool_id=data["pool"], reason=data["reason"],
                                             source="portal", actor=actor_for(request))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Number suppressed.")
            return redirect("portal:suppressions")
    if action == "import" and _imported(request, upload, consent_services.suppressions_import):
        return redirect("portal:suppressions")
    page = Paginator(selectors.suppression_list(tenant=tenant), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/compliance/suppressions/list.html", {
        "page": page, "form": form, "upload": upload, "can_manage": _can_manage(request),
        "portal_section": "suppressions"})


@portal_view("compliance.manage", methods=("POST",))
def suppression_delete(request: HttpRequest, suppression_id: str) -> HttpResponse:
    try:
        consent_services.suppression_delete(tenant=request.tenant, public_id=suppression_id, actor=actor_for(request))
    except DomainError:
        raise Http404("No such suppression.") from None
    messages.success(request, "Suppression lifted.")
    return redirect("portal:suppressions")


@portal_view("compliance.view", methods=("GET", "HEAD"))
def suppressions_export(request: HttpRequest) -> HttpResponse:
    return _csv_response(consent_services.suppressions_csv(selectors.suppression_list(tenant=request.tenant).iterator()),
                         "suppressions.csv")
