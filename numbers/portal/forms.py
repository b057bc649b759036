"""Portal forms for numbers: input shape only; TTL bounds, callback URLs and availability are the services' business."""
from __future__ import annotations

from numbers.models import Capability, NumberType
from numbers.services import TTL_MAX, TTL_MIN

from django import forms

# (seconds, label) offered as one-click choices; the services accept anything from 60 s to 30 days.
LEASE_PRESETS = [(600, "10 minutes"), (1800, "30 minutes"), (3600, "1 hour"), (6 * 3600, "6 hours"),
                 (86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days")]
EXTEND_PRESETS = [(300, "+5 min"), (900, "+15 min"), (3600, "+1 h")]

_COUNTRY = {"placeholder": "US", "autocomplete": "off", "spellcheck": "false", "maxlength": 2}


class NumberSearchForm(forms.Form):
    """The available-number search; a value that does not parse is ignored, not an error page."""

    country = forms.RegexField(r"^[A-Za-z]{2}$", required=False, widget=forms.TextInput(attrs=_COUNTRY),
                               error_messages={"invalid": "Two letters, e.g. US."})
    type = forms.ChoiceField(required=False, choices=[("", "Any type"), *NumberType.choices])
    capability = forms.ChoiceField(required=False, choices=[("", "Any capability"), *Capability.choices])
    contains = forms.RegexField(
        r"^\d{1,15}$", required=False, label="Contains",
        widget=forms.TextInput(attrs={"placeholder": "Digits, e.g. 555", "inputmode": "numeric", "spellcheck": "false"}),
        error_messages={"invalid": "Digits only."},
    )

    def filters(self) -> dict:
        """Keyword arguments for services.numbers_available."""
        self.is_valid()
        data = self.cleaned_data
        return {"country": (data.get("country") or "").upper() or None, "type": data.get("type") or None,
                "capability": data.get("capability") or None, "contains": data.get("contains") or None}

    @property
    def searched(self) -> bool:
        return any(self.filters().values())


class RentForm(forms.Form):
    number = forms.CharField(max_length=32, widget=forms.HiddenInput)


class LeaseForm(forms.Form):
    country = forms.RegexField(r"^[A-Za-z]{2}$", widget=forms.TextInput(attrs=_COUNTRY),
                               help_text="Two letters, e.g. US.", error_messages={"invalid": "Two letters, e.g. US."})
    type = forms.ChoiceField(choices=NumberType.choices, initial=NumberType.MOBILE)
    ttl_seconds = forms.TypedChoiceField(label="Lease for", coerce=int, choices=LEASE_PRESETS, initial=600,
                                         help_text="The number is released automatically at the end; extend it any time.")
    callback_url = forms.CharField(
        label="Callback URL", required=False, max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/sms/inbound", "spellcheck": "false"}),
        help_text="Inbound messages to the number are also posted here.",
    )

    def clean_country(self) -> str:
        return self.cleaned_data["country"].upper()


class ExtendForm(forms.Form):
    """A preset button (`preset`) or a number of seconds; a pressed preset wins."""

    preset = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=EXTEND_PRESETS)
    ttl_seconds = forms.IntegerField(
        label="Seconds", required=False, min_value=TTL_MIN, max_value=TTL_MAX,
        widget=forms.NumberInput(attrs={"placeholder": "e.g. 1200", "min": TTL_MIN, "max": TTL_MAX}),
        help_text="60 seconds to 30 days, added to the current end.",
    )

    def clean(self) -> dict:
        data = super().clean()
        seconds = data.get("preset") or data.get("ttl_seconds")
        if seconds is None and not self.errors:
            self.add_error("ttl_seconds", "Choose how much longer, or enter a number of seconds.")
        data["seconds"] = seconds
        return data
