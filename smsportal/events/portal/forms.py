"""Portal forms for webhooks: input shape only; what is allowed is decided by smsportal.events.services."""
from __future__ import annotations

from django import forms

from smsportal.events.registry import event_types


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "https://example.com/webhooks/sms", "inputmode": "url",
                                      "autocomplete": "off", "spellcheck": "false"}),
        help_text="An http(s) address on the internet that answers 2xx within 5 seconds.",
    )
    description = forms.CharField(max_length=200, required=False,
                                  widget=forms.TextInput(attrs={"placeholder": "e.g. CRM delivery receipts"}))
    events = forms.MultipleChoiceField(
        choices=lambda: [(event, event) for event in event_types()], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event, including types added later.",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="A disabled endpoint receives nothing.")
