"""Admin for account managers: price lists (the default and each tenant's) with CSV import and export, number
prices, balances (with what is available, held, the credit limit, the daily caps and the low-balance threshold)
with an audited credit page, the ledger, read-only, which each balance links to filtered to its tenant, and the
number charges, read-only, the savings calculator's direct operator prices, and invoices (read-only once issued)
with their credit notes."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.forms import formset_factory
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts import selectors
from accounts.services import ip_text
from accounts.services.audit import Actor, audit_record
from billing import invoices
from billing import selectors as billing_selectors
from billing.models import (
    Balance,
    CreditNote,
    CreditNoteLine,
    DirectPrice,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    NumberCharge,
    NumberPrice,
    Price,
)
from billing.pdf import pdf_response
from billing.prices import number_prices_csv, number_prices_import, prices_csv, prices_import
from billing.services import balance_credit, balance_low_rearm
from smsportal.errors import DomainError


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


def _import_view(model_admin, request, *, importer, action: str, template: str, title: str):
    """The admin's CSV import page of a price list (message prices or number prices): upload, every bad line
    listed (nothing written), or the counts, audited."""
    form, errors = PriceUploadForm(request.POST or None, request.FILES or None), []
    if request.method == "POST" and form.is_valid():
        upload, tenant = form.cleaned_data["prices"], form.cleaned_data["tenant"]
        try:
            result = importer(tenant=tenant, text=upload.read().decode("utf-8-sig"))
        except UnicodeDecodeError:
            form.add_error("prices", "The file is not UTF-8 text.")
        else:
            errors = result.errors
            if not errors:
                audit_record(action=action, actor=_actor(request), tenant=tenant, target=tenant,
                             changes={"file": upload.name, "created": result.created, "updated": result.updated})
                model_admin.message_user(request, f"{result.created} prices added, {result.updated} changed, "
                                                  f"{result.unchanged} already there.", messages.SUCCESS)
                opts = model_admin.model._meta
                return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    context = {**model_admin.admin_site.each_context(request), "form": form, "errors": errors,
               "title": title, "opts": model_admin.model._meta}
    return render(request, template, context)


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
        return _import_view(self, request, importer=prices_import, action="prices.import",
                            template="admin/billing/price/import.html", title="Import prices")

    @admin.action(description="Export the selected prices (CSV, as the import reads it)")
    def prices_export(self, request, queryset):
        rows = queryset.order_by("tenant_id", "country", "prefix", "message_type", "min_monthly_volume")
        response = HttpResponse(prices_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="prices.csv"'
        return response


class BalanceCreditForm(forms.Form):
    amount = forms.DecimalField(max_digits=18, decimal_places=6, help_text="Negative: an adjustment down.")
    reason = forms.CharField(max_length=500)


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    """Figures are read-only: they change only through ledger entries (the credit page below, the pipeline)."""

    list_display = ["tenant", "currency", "balance", "reserved", "available", "credit_limit", "available_to_hold",
                    "daily_spend_cap", "spent_today_shown", "low_balance_threshold", "low_balance_alerted_at",
                    "tax_rate", "ledger", "updated_at"]
    search_fields = ["tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "balance", "reserved", "available", "available_to_hold", "spent_today_shown",
                       "api_key_caps", "low_balance_alerted_at", "ledger", "updated_at"]
    change_form_template = "admin/billing/balance/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        # The currency is fixed once money moved in it.
        return [*self.readonly_fields, "currency"] if obj is not None else ["balance", "reserved", "updated_at"]

    @admin.display(description="Available (balance less held)")
    def available(self, obj: Balance):
        return obj.available

    @admin.display(description="Available to hold (with credit)")
    def available_to_hold(self, obj: Balance):
        return obj.available + obj.credit_limit

    @admin.display(description="Spent today (UTC)")
    def spent_today_shown(self, obj: Balance):
        return billing_selectors.balance_spent_today(balance=obj)

    @admin.display(description="API key caps (today)")
    def api_key_caps(self, obj: Balance):
        keys = billing_selectors.api_key_spend_today(tenant=obj.tenant)
        if not keys:
            return "No key of this tenant has a daily cap."
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li>{} ({}): {} of {} {}</li>",
            ((k.name, k.prefix, k.spent_today, k.cap, obj.currency) for k in keys)))

    @admin.display(description="Ledger")
    def ledger(self, obj: Balance):
        url = reverse("admin:billing_ledgerentry_changelist")
        return format_html('<a href="{}?tenant__id__exact={}">Ledger of {}</a>', url, obj.tenant_id, obj.tenant)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "low_balance_threshold" in form.changed_data:
            balance_low_rearm(tenant_id=obj.tenant_id)  # a new threshold: the next crossing of it alerts

    def get_urls(self):
        return [path("<int:pk>/credit/", self.admin_site.admin_view(self.credit_view), name="billing_balance_credit"),
                *super().get_urls()]

    def credit_view(self, request, pk: int):
        balance = Balance.objects.select_related("tenant").get(pk=pk)
        form = BalanceCreditForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                balance_credit(tenant=balance.tenant, amount=form.cleaned_data["amount"],
                               reason=form.cleaned_data["reason"], actor=_actor(request))
            except DomainError as exc:
                form.add_error("amount", exc.message)
            else:
                self.message_user(request, f"{form.cleaned_data['amount']} {balance.currency} recorded.",
                                  messages.SUCCESS)
                return redirect(reverse("admin:billing_balance_change", args=[pk]))
        context = {**self.admin_site.each_context(request), "form": form, "balance": balance,
                   "title": f"Credit or adjust {balance.tenant}", "opts": self.model._meta}
        return render(request, "admin/billing/balance/credit.html", context)


class _NoWrites:
    """Rows written only by billing's services (the ledger, the charge job): admin shows them, never edits them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(_NoWrites, admin.ModelAdmin):
    """Append-only: no add, change or delete here (the database refuses them on PostgreSQL)."""

    list_display = ["created_at", "tenant", "kind", "balance_delta", "reserved_delta", "currency", "message_id",
                    "messages", "reason", "actor"]
    list_filter = ["kind", "currency"]
    search_fields = ["tenant__slug", "reason", "message_id"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    show_full_result_count = False

    def lookup_allowed(self, lookup, value, request=None):
        # One tenant's ledger, as each balance links to it (not a list filter: one entry per tenant would be long).
        return lookup == "tenant__id__exact" or super().lookup_allowed(lookup, value, request)


@admin.register(NumberPrice)
class NumberPriceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "number_type", "country", "monthly_rental", "lease_per_hour", "currency",
                    "effective_from"]
    list_filter = ["currency", "number_type", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["country", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["number_prices_export"]
    change_list_template = "admin/billing/numberprice/change_list.html"

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.number_prices_import_view),
                     name="billing_numberprice_import"),
                *super().get_urls()]

    def number_prices_import_view(self, request):
        return _import_view(self, request, importer=number_prices_import, action="number_prices.import",
                            template="admin/billing/numberprice/import.html", title="Import number prices")

    @admin.action(description="Export the selected number prices (CSV, as the import reads it)")
    def number_prices_export(self, request, queryset):
        rows = queryset.order_by("tenant_id", "country", "number_type", "currency", "effective_from")
        response = HttpResponse(number_prices_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="number_prices.csv"'
        return response


@admin.register(NumberCharge)
class NumberChargeAdmin(_NoWrites, admin.ModelAdmin):
    """Read-only: written by the charge job (billing/charges.py). Filter by status to see what is owed."""

    list_display = ["day", "tenant", "number", "kind", "seconds", "amount", "currency", "status", "charged_at"]
    list_filter = ["status", "kind", "currency"]
    search_fields = ["tenant__slug", "number__number"]
    list_select_related = ["tenant", "number"]
    date_hierarchy = "day"


@admin.register(DirectPrice)
class DirectPriceAdmin(admin.ModelAdmin):
    """The savings calculator's reference data (billing/data/direct_prices.csv): correct a figure, or add a row with
    a newer `as_of` (it takes over) and say where it comes from."""

    list_display = ["country", "message_type", "price", "currency", "as_of", "source"]
    list_filter = ["currency", "message_type", "as_of"]
    search_fields = ["country", "source"]
    readonly_fields = ["updated_at"]


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = ["position", "kind", "description", "country", "message_type", "quantity", "segments", "unit_price",
              "amount"]
    extra = 0

    def has_add_permission(self, request, obj=None):
        return obj is not None and obj.is_draft

    def has_change_permission(self, request, obj=None):
        return obj is not None and obj.is_draft

    def has_delete_permission(self, request, obj=None):
        return obj is not None and obj.is_draft


class CreditNoteInline(admin.TabularInline):
    model = CreditNote
    fields = ["number", "issued_at", "reason", "total", "actor"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """A draft may be edited (lines and totals are the generator's; edit with care) and deleted; an issued invoice
    is read-only: issue, mark paid or void by the actions, correct it by a credit note (the button on it)."""

    list_display = ["__str__", "tenant", "period", "status", "currency", "subtotal", "tax", "total", "issued_at"]
    list_filter = ["status", "currency", "period"]
    search_fields = ["number", "public_id", "tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["public_id", "number", "status", "created_at", "issued_at", "paid_at", "voided_at"]
    inlines = [InvoiceLineInline, CreditNoteInline]
    actions = ["invoices_issue", "invoices_mark_paid", "invoices_void"]
    change_form_template = "admin/billing/invoice/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_draft:
            return [field.name for field in self.model._meta.fields]
        return self.readonly_fields

    def has_add_permission(self, request):
        return False  # invoices come from the monthly run (or manage.py invoices_generate)

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.is_draft  # an issued invoice is view-only

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.is_draft

    def delete_model(self, request, obj):
        invoices.invoice_draft_delete(tenant=obj.tenant, invoice=obj, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for invoice in queryset:
            self.delete_model(request, invoice)

    def get_urls(self):
        return [path("<int:pk>/credit-note/", self.admin_site.admin_view(self.credit_note_view),
                     name="billing_invoice_credit_note"),
                path("<int:pk>/pdf/", self.admin_site.admin_view(self.pdf_view), name="billing_invoice_pdf"),
                *super().get_urls()]

    def _each(self, request, queryset, change, done: str) -> None:
        moved, refused = 0, []
        for invoice in queryset.select_related("tenant"):
            try:
                change(invoice)
            except DomainError as exc:
                refused.append(f"{invoice}: {exc.message}")
            else:
                moved += 1
        if moved:
            self.message_user(request, f"{moved} invoice(s) {done}.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)

    @admin.action(description="Issue the selected drafts (numbered, emailed, invoice.issued)")
    def invoices_issue(self, request, queryset):
        self._each(request, queryset, lambda i: invoices.invoice_issue(tenant=i.tenant, invoice=i,
                                                                       actor=_actor(request)), "issued")

    @admin.action(description="Mark the selected issued invoices paid")
    def invoices_mark_paid(self, request, queryset):
        self._each(request, queryset, lambda i: invoices.invoice_status_set(
            tenant=i.tenant, invoice=i, status=InvoiceStatus.PAID, actor=_actor(request)), "marked paid")

    @admin.action(description="Void the selected issued invoices")
    def invoices_void(self, request, queryset):
        self._each(request, queryset, lambda i: invoices.invoice_status_set(
            tenant=i.tenant, invoice=i, status=InvoiceStatus.VOID, actor=_actor(request)), "voided")

    def pdf_view(self, request, pk: int):
        invoice = Invoice.objects.select_related("tenant").get(pk=pk)
        return pdf_response(invoice)

    def credit_note_view(self, request, pk: int):
        invoice = Invoice.objects.select_related("tenant").get(pk=pk)
        form = CreditNoteForm(request.POST or None)
        lines = CreditNoteLineFormSet(request.POST or None, prefix="lines")
        if request.method == "POST" and form.is_valid() and lines.is_valid():
            rows = [(row["description"], row["amount"]) for row in lines.cleaned_data if row]
            try:
                note = invoices.credit_note_create(tenant=invoice.tenant, invoice=invoice, lines=rows,
                                                   reason=form.cleaned_data["reason"], actor=_actor(request))
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Credit note {note.number} issued: {note.total} {note.currency}.",
                                  messages.SUCCESS)
                return redirect(reverse("admin:billing_invoice_change", args=[pk]))
        context = {**self.admin_site.each_context(request), "form": form, "lines": lines, "invoice": invoice,
                   "title": f"Credit note for {invoice}", "opts": self.model._meta}
        return render(request, "admin/billing/invoice/credit_note.html", context)


class CreditNoteForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Printed on the credit note and sent to the tenant's records.")


class CreditNoteLineForm(forms.Form):
    description = forms.CharField(max_length=300)
    amount = forms.DecimalField(max_digits=14, decimal_places=2, help_text="Negative: the tenant owes less.")


CreditNoteLineFormSet = formset_factory(CreditNoteLineForm, extra=3, min_num=1, validate_min=True)


class CreditNoteLineInline(admin.TabularInline):
    model = CreditNoteLine
    fields = ["position", "description", "amount"]
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    """Issued when made (on an invoice's "Create credit note" page) and never changed."""

    list_display = ["number", "tenant", "invoice", "issued_at", "currency", "total", "reason"]
    search_fields = ["number", "public_id", "tenant__slug", "invoice__number"]
    list_select_related = ["tenant", "invoice"]
    inlines = [CreditNoteLineInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
