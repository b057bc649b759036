"""Portal page: the tenant's quiet hours (its own window, narrowing the legal presets shown beside it)."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.portal.decorators import actor_for, add_domain_error, portal_view
from compliance import quiet_hours, selectors, services
from smsportal.errors import DomainError

DAYS = [(1, "Monday"), (2, "Tuesday"), (3, "Wednesday"), (4, "Thursday"), (5, "Friday"), (6, "Saturday"), (7, "Sunday")]


class QuietHoursForm(forms.Form):
    window_start = forms.TimeField(required=False, label="Send marketing from",
                                   widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
                                   help_text="Local time of the recipient. Empty: the legal window only.")
    window_end = forms.TimeField(required=False, label="Until", widget=forms.TimeInput(attrs={"type": "time"},
                                                                                     format="%H:%M"))
    days_off = forms.TypedMultipleChoiceField(choices=DAYS, coerce=int, required=False,
                                              widget=forms.CheckboxSelectMultiple, label="No marketing on")
    apply_to_transactional = forms.BooleanField(required=False, label="Also defer transactional messages",
                                                help_text="OTP messages are never deferred.")


@portal_view("compliance.view", post="compliance.manage")
def quiet_hours_settings(request: HttpRequest) -> HttpResponse:
    setting = selectors.quiet_hours_get(tenant=request.tenant)
    initial = {} if setting is None else {
        "window_start": setting.window_start, "window_end": setting.window_end, "days_off": setting.days_off,
        "apply_to_transactional": setting.apply_to_transactional}
    form = QuietHoursForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.quiet_hours_set(tenant=request.tenant, actor=actor_for(request), **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, "Quiet hours saved.")
            return redirect("portal:quiet-hours")
    return render(request, "portal/compliance/quiet_hours/settings.html", {
        "form": form, "presets": sorted(quiet_hours.presets().values(), key=lambda p: p.country),
        "presets_version": quiet_hours.presets_version(), "weekdays": quiet_hours.WEEKDAYS})
