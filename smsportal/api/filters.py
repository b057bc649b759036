"""Filters shared by /v1 lists: a date-time filter that cannot make PostgreSQL fail."""
from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

OVERFLOW = "Datetime value out of range."  # the message and code (`overflow`) of DRF's DateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC before it reaches a query.

    django-filter passes on the offset it was given: PostgreSQL refuses one beyond ±15:59
    (`+23:59`, which Python accepts), and a year past 9999 or before 1 in UTC cannot be a
    Python datetime at all. Both are a 400 `overflow`, as in a request body."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(OVERFLOW, code="overflow") from None


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
