"""The base of every /v1 request-body serializer: JSON types are what the schema says.

DRF coerces on input: a JSON number passes as a string field (`0` -> "0"), `0`/`1`/"yes" as a
boolean and "5" as an integer. Our schema promises string, boolean and integer, and a client that
sends the wrong type has a bug worth hearing about, so a body field of the wrong JSON type is a 400
on that field (code `invalid`), before DRF's own validation. Query-string serializers stay as DRF
makes them: everything in a URL is a string.
"""
from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

_EXPECTED = (
    (serializers.BooleanField, (bool,), "a JSON boolean (true or false)"),
    (serializers.IntegerField, (int,), "a JSON integer"),
    (serializers.CharField, (str,), "a JSON string"),
    (serializers.ChoiceField, (str,), "a JSON string"),
    (serializers.DateTimeField, (str,), "an ISO 8601 date-time string"),
)


def _type_error(field: serializers.Field, value) -> ErrorDetail | dict | None:
    """What is wrong with the JSON type of `value` for `field` (by list position for a list), else None."""
    if value is None:
        return None  # null is the field's own business (allow_null)
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        wrong = {i: error for i, item in enumerate(value) if (error := _type_error(field.child, item)) is not None}
        return wrong or None
    for kind, types, name in _EXPECTED:
        if isinstance(field, kind):
            if isinstance(value, bool) and bool not in types:
                return ErrorDetail(f"Must be {name}.", code="invalid")
            return None if isinstance(value, types) else ErrorDetail(f"Must be {name}.", code="invalid")
    return None


class JsonBodySerializer(serializers.Serializer):
    # Rules the services enforce with their own codes (a range, a name pattern), shown in the schema:
    # merged into the component by smsportal/api/schema.py, e.g. {"properties": {"ttl_seconds": {"minimum": 60}}}.
    schema_rules: dict = {}

    def to_internal_value(self, data):
        wrong = self._wrong_types(data) if isinstance(data, dict) else {}
        if not wrong:
            return super().to_internal_value(data)
        try:  # the other fields' problems too, so one answer lists them all
            super().to_internal_value({name: value for name, value in data.items() if name not in wrong})
        except ValidationError as exc:
            if isinstance(exc.detail, dict):
                wrong = {**exc.detail, **wrong}
        raise ValidationError(wrong)

    def _wrong_types(self, data: dict) -> dict:
        wrong = {}
        for name, field in self.fields.items():
            if not field.read_only and name in data:
                error = _type_error(field, data[name])
                if error is not None:
                    wrong[name] = error if isinstance(error, dict) else [error]
        return wrong
