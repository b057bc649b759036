"""Portal form of a number pool: input shape only; what a pool may hold is numbers/pools.py's business."""
from __future__ import annotations

from django import forms


class PoolForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. alerts", "spellcheck": "false"}),
        help_text="Letters, digits, “-” and “_” (up to 50): send from the pool with “from”: “pool:NAME”.",
    )
    description = forms.CharField(required=False, max_length=300,
                                  widget=forms.TextInput(attrs={"placeholder": "What it is for"}))
    sticky_sender = forms.BooleanField(required=False, initial=True, label="Sticky sender",
                                       help_text="A recipient keeps getting the same number of the pool.")
    geo_match = forms.BooleanField(required=False, initial=True, label="Geo-match",
                                   help_text="Send from a number of the recipient's country when the pool has one.")
    numbers = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Numbers",
                                        help_text="Numbers you hold that can send SMS.")

    def __init__(self, *args, numbers: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["numbers"].choices = [(n.public_id, f"{n.number} ({n.country})") for n in numbers]

    def service_kwargs(self) -> dict:
        return dict(self.cleaned_data)
