"""Portal page of sender IDs (role permissions `compliance.view`, and `compliance.manage` to register): the team's
registrations with their review, and a form to register one with its documents (docs/compliance.md "Sender IDs")."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.portal.decorators import actor_for, add_domain_error, portal_view
from accounts.roles import role_can
from compliance import sender_ids
from smsportal.errors import DomainError


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class SenderIdForm(forms.Form):
    value = forms.CharField(max_length=20, label="Sender ID",
                            help_text="3 to 11 letters, digits or spaces (at least one letter), or one of your numbers.")
    countries = forms.CharField(max_length=1000, help_text="ISO codes, separated by commas: IN, SG, AE.")
    use_case = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text="What you send with it, and to whom.")
    sample_messages = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
                                      help_text="Up to 5 examples, one a line.")
    documents = MultipleFileField(required=False, widget=MultipleFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg"}),
                                  help_text="A letter of authorization or other papers: PDF, PNG or JPEG.")


@portal_view("compliance.view", post="compliance.manage")
def sender_id_list(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    form = SenderIdForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = sender_ids.sender_id_register(
                tenant=tenant, value=data["value"], countries=[c.strip() for c in data["countries"].split(",")
                                                               if c.strip()],
                use_case=data["use_case"], sample_messages=[line.strip() for line in
                                                            data["sample_messages"].splitlines() if line.strip()],
                documents=data["documents"], actor=actor_for(request))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"{created.value} is registered and waits for an account manager's review.")
            return redirect("portal:sender-ids")
    rows = [(row, sender_ids.sender_id_status(row)) for row in sender_ids.sender_id_list(tenant=tenant)]
    return render(request, "portal/compliance/sender_ids/list.html", {
        "rows": rows, "form": form, "can_manage": role_can(request.membership.role, "compliance.manage"),
        "portal_section": "sender-ids"})
