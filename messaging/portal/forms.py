"""Portal forms for messaging: input shape only; what a message or template may be is the services' business."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from django import forms

from messaging.models import MessageTemplate, MessageType, Status
from messaging.templatetags.messaging_portal import placeholders

CONTENT_TEXT, CONTENT_TEMPLATE = "text", "template"


class MessageFilterForm(forms.Form):
    """The message log's search and filters; a value that does not parse is ignored, not an error page."""

    q = forms.CharField(
        label="Search", required=False, max_length=128,
        widget=forms.TextInput(attrs={
            "type": "search", "placeholder": "Number, message id or client reference", "spellcheck": "false",
        }),
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Status.choices])
    message_type = forms.ChoiceField(label="Type", required=False, choices=[("", "Any type"), *MessageType.choices])
    created_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> dict:
        """Keyword arguments for selectors.message_search: days are whole UTC days, both ends included."""
        data = self._valid_data()
        to_day = data.get("created_to")
        return {
            "query": data.get("q") or "",
            "status": data.get("status") or None,
            "message_type": data.get("message_type") or None,
            "created_from": _midnight(data.get("created_from")),
            "created_before": _midnight(to_day + timedelta(days=1)) if to_day else None,
        }

    def query_items(self) -> dict[str, str]:
        """The filters in effect, as query string items for the page links."""
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in self._valid_data().items() if v}

    def _valid_data(self) -> dict:
        # Fields that did not validate are left out of cleaned_data: they are simply not applied.
        self.is_valid()
        return self.cleaned_data


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class QuoteForm(forms.Form):
    """A message's body: what its length depends on (the live quote and "Check length"), and the sender,
    checked like the send checks it when given (the send form requires it)."""

    sender = forms.CharField(label="From", required=False, max_length=60)
    # What the price depends on besides the body (the send form requires `to`): optional for a live check.
    to = forms.CharField(label="To", required=False, max_length=40)
    region = forms.CharField(label="Region", required=False, max_length=2)
    message_type = forms.ChoiceField(label="Type", required=False, choices=MessageType.choices)

    content = forms.ChoiceField(
        label="Content", initial=CONTENT_TEXT, widget=forms.RadioSelect,
        choices=[(CONTENT_TEXT, "Write a text"), (CONTENT_TEMPLATE, "Use a stored template")],
    )
    text = forms.CharField(
        label="Message", required=False, strip=False, max_length=10000,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "Your code is 123456"}),
    )
    template = forms.ChoiceField(label="Template", required=False)
    variables = forms.CharField(
        label="Variables", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "placeholder": "code=123456"}),
        help_text="One name=value per line, for each ${placeholder} of the template.",
    )
    smart_encoding = forms.BooleanField(
        label="Smart encoding", required=False, initial=True,
        help_text="Replace look-alikes such as “curly quotes” and dashes with plain GSM-7 characters when that "
                  "keeps the message out of UCS-2.",
    )

    def __init__(self, *args, templates: list[MessageTemplate], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["template"]
        field.choices = [("", "Choose a template…")] + [(t.name, t.name) for t in templates]
        # quote.js pre-fills the variables with the chosen template's placeholders.
        field.widget.attrs["data-placeholders"] = json.dumps({t.name: placeholders(t.body) for t in templates})

    def clean_variables(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["variables"].splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, value = line.partition("=")
            name = name.strip()
            if not equals or not name:
                raise forms.ValidationError(f"Line {number}: write name=value, e.g. code=123456.")
            if name in variables:
                raise forms.ValidationError(f"Line {number}: “{name}” is given twice.")
            variables[name] = value
        return variables

    def body(self) -> dict:
        """The service's body arguments: the text, or the template with its variables, as chosen."""
        data = self.cleaned_data
        use_template = data.get("content") == CONTENT_TEMPLATE
        return {
            "text": None if use_template else (data.get("text") or None),
            "template": (data.get("template") or None) if use_template else None,
            "variables": (data.get("variables") or {}) if use_template else {},
            "smart_encoding": data.get("smart_encoding", True),
        }

    def price_fields(self) -> dict | None:
        """The pipeline's fields for a quote with its price (messaging.accept.messages_quote), or None while the
        recipient or the sender is still missing."""
        data = self.cleaned_data
        if not (data.get("to") or "").strip() or not (data.get("sender") or "").strip():
            return None
        return {**self.body(), "to": data["to"], "region": data.get("region") or None, "sender": data["sender"],
                "message_type": data.get("message_type") or MessageType.TRANSACTIONAL}

    @property
    def is_empty(self) -> bool:
        body = self.body()
        return not (body["text"] or body["template"])


class MessageSendForm(QuoteForm):
    to = forms.CharField(
        label="To", max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "+14155550123", "autocomplete": "off", "spellcheck": "false",
                                      "inputmode": "tel", "autofocus": True}),
        help_text="E.164, or a national number with the region.",
    )
    region = forms.CharField(
        label="Region", required=False, max_length=2,
        widget=forms.TextInput(attrs={"placeholder": "US", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Two-letter country code for a national number.",
    )
    sender = forms.CharField(
        label="From", max_length=60,
        widget=forms.TextInput(attrs={"placeholder": "Acme", "autocomplete": "off", "spellcheck": "false"}),
        help_text="A sender ID (up to 11 letters and digits), a number or short code you hold, or pool:NAME for a number pool.",
    )
    message_type = forms.ChoiceField(label="Type", choices=MessageType.choices, initial=MessageType.TRANSACTIONAL)
    scheduled_at = forms.DateTimeField(
        label="Send at", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="In UTC, up to 30 days ahead. Leave empty to send now.",
    )

    field_order = ["to", "region", "sender", "message_type", "content", "text", "template", "variables",
                   "scheduled_at", "smart_encoding"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The text or the template is required, whichever is chosen; a blank form marks both as needed.
        chosen = self.data.get("content") if self.is_bound else None
        self.fields["text"].required = chosen != CONTENT_TEMPLATE
        self.fields["template"].required = chosen != CONTENT_TEXT
        self.fields["text"].error_messages["required"] = "Write the message."
        self.fields["template"].error_messages["required"] = "Choose a template."

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            **self.body(), "to": data["to"], "region": data["region"] or None, "sender": data["sender"],
            "message_type": data["message_type"], "scheduled_at": data["scheduled_at"],
        }

    def field_for(self, error_field: str | None) -> str | None:
        """The form field that shows a service error about `error_field` (the API's name for it)."""
        if not error_field:
            return None
        if error_field == "from":
            return "sender"
        if error_field.startswith("variables"):
            return "variables"
        if error_field == "text" and self.cleaned_data.get("content") == CONTENT_TEMPLATE:
            return "template"  # e.g. message_too_long for a rendered template
        return error_field if error_field in self.fields else None


class TemplateForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. login_code", "spellcheck": "false"}),
        help_text="Letters, digits, “_”, “-” and “.”: the name the API takes as “template”.",
    )
    message_type = forms.ChoiceField(label="Type", choices=MessageType.choices, initial=MessageType.TRANSACTIONAL)
    body = forms.CharField(
        label="Body", strip=False, max_length=10000,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Your ${app} code is ${code}"}),
        help_text="Placeholders are ${name}: letters, digits and underscores, not starting with a digit.",
    )
    description = forms.CharField(required=False, max_length=500,
                                  widget=forms.TextInput(attrs={"placeholder": "What it is for"}))
