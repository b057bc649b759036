"""Portal forms of billing: input shape only; what an estimate may be is billing/savings.py's business."""
from __future__ import annotations

from datetime import date, timedelta

import phonenumbers
from django import forms
from django.utils import timezone

from billing import savings
from billing.errors import SavingsInvalid

MAX_USAGE_DAYS = 366


class UsageRangeForm(forms.Form):
    """The usage page's days (UTC, both included); default: this month so far. A bad range shows its error and
    the default range."""

    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("“From” must be on or before “To”.")
        if start and end and (end - start).days >= MAX_USAGE_DAYS:
            raise forms.ValidationError(f"The range may span at most {MAX_USAGE_DAYS} days.")
        return data

    def days(self, *, today: date | None = None) -> tuple[date, date]:
        today = today or timezone.now().date()
        data = self.cleaned_data if self.is_valid() else {}
        end = data.get("end") or today
        start = data.get("start") or min(end.replace(day=1), end)
        if start > end or (end - start).days >= MAX_USAGE_DAYS:
            start = end - timedelta(days=MAX_USAGE_DAYS - 1)
        return start, end


class LowBalanceForm(forms.Form):
    """The low-balance threshold (Billing settings); empty clears it. The rules are the service's
    (billing.services.balance_low_threshold_set); the field only reads a decimal."""

    low_balance_threshold = forms.DecimalField(
        label="Low-balance alert below", required=False, max_digits=18, decimal_places=6, min_value=0,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
        help_text="When what live sends may still use (balance, less what is held, plus any credit) falls below "
                  "this, your owners and billing members get an email and your webhooks the event balance.low, "
                  "once per crossing. Empty: no alert.")


class PriceFilterForm(forms.Form):
    country = forms.CharField(label="Country", required=False, max_length=2,
                              widget=forms.TextInput(attrs={"placeholder": "GB", "autocomplete": "off",
                                                            "spellcheck": "false", "size": 4}))

    def clean_country(self) -> str:
        value = self.cleaned_data["country"].strip().upper()
        if value and not (value.isascii() and value.isalpha() and phonenumbers.country_code_for_region(value)):
            raise forms.ValidationError(f"{value!r} is not a country code we know (ISO 3166 alpha-2, e.g. GB).")
        return value


class SavingsForm(forms.Form):
    volumes = forms.CharField(
        label="SMS a month, by country", strip=True, max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "placeholder": "GB 10000\nUS 50000"}),
        help_text="One country per line: its two-letter code and how many SMS you send there a month.",
    )
    message_type = forms.ChoiceField(label="Type", choices=[(t, t.capitalize() if t != "otp" else "OTP")
                                                            for t in savings.MESSAGE_TYPES], initial="otp")

    def clean_volumes(self) -> dict[str, int]:
        volumes: dict[str, object] = {}
        for number, line in enumerate(self.cleaned_data["volumes"].splitlines(), start=1):
            parts = line.replace(",", " ").replace("=", " ").replace(":", " ").split()
            if not parts:
                continue
            if len(parts) != 2:
                raise forms.ValidationError(f"Line {number}: write a country code and a number, e.g. GB 10000.")
            country, volume = parts
            digits = volume.replace("_", "").replace("'", "")
            if not digits.isdigit():
                volumes[country] = volume  # refused below with the API's message (invalid_volume)
            else:
                previous = volumes.get(country, 0)
                volumes[country] = (previous if isinstance(previous, int) else 0) + int(digits)
        try:
            return savings.savings_volumes_clean(volumes)
        except SavingsInvalid as exc:
            raise forms.ValidationError(exc.message) from exc

    @staticmethod
    def volumes_text(volumes: dict[str, int]) -> str:
        return "\n".join(f"{country} {volume}" for country, volume in sorted(volumes.items()))
