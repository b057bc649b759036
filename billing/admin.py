"""Admin for account managers: price lists (the default and each tenant's) with CSV import and export."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse

from accounts import selectors
from accounts.services import ip_text
from accounts.services.audit import Actor, audit_record
from billing.models import Price
from billing.prices import prices_csv, prices_import


def _actor(request) -> Actor:
    return Actor(user=request.user, ip=ip_text(getattr(request, "client_ip", None)))


class PriceUploadForm(forms.Form):
    tenant = forms.SlugField(required=False, help_text="The tenant's slug, for its own list; empty: the default list.")
    prices = forms.FileField(help_text="CSV, UTF-8.")

    def clean_tenant(self):
        slug = self.cleaned_data["tenant"]
        if not slug:
            return None
        tenant = selectors.tenant_by_slug(slug=slug)
        if tenant is None:
            raise forms.ValidationError(f"No tenant has the slug {slug!r}.")
        return tenant


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "prefix", "country", "operator", "message_type", "price", "currency",
                    "effective_from", "min_monthly_volume"]
    list_filter = ["currency", "message_type", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "country", "operator", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["prices_export"]
    change_list_template = "admin/billing/price/change_list.html"

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.prices_import_view), name="billing_price_import"),
                *super().get_urls()]

    def prices_import_view(self, request):
        form, errors = PriceUploadForm(request.POST or None, request.FILES or None), []
        if request.method == "POST" and form.is_valid():
            upload, tenant = form.cleaned_data["prices"], form.cleaned_data["tenant"]
            try:
                result = prices_import(tenant=tenant, text=upload.read().decode("utf-8-sig"))
            except UnicodeDecodeError:
                form.add_error("prices", "The file is not UTF-8 text.")
            else:
                errors = result.errors
                if not errors:
                    audit_record(action="prices.import", actor=_actor(request), tenant=tenant, target=tenant,
                                 changes={"file": upload.name, "created": result.created, "updated": result.updated})
                    self.message_user(request, f"{result.created} prices added, {result.updated} changed, "
                                               f"{result.unchanged} already there.", messages.SUCCESS)
                    return redirect(reverse("admin:billing_price_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "errors": errors,
                   "title": "Import prices", "opts": self.model._meta}
        return render(request, "admin/billing/price/import.html", context)

    @admin.action(description="Export the selected prices (CSV, as the import reads it)")
    def prices_export(self, request, queryset):
        rows = queryset.order_by("tenant_id", "country", "prefix", "message_type", "min_monthly_volume")
        response = HttpResponse(prices_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="prices.csv"'
        return response
