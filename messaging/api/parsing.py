"""A send's JSON, read into message_prepare's arguments: the shape MessageCreateSerializer documents.

Hand-written rather than the serializer itself because a batch reads up to 1,000 of them per
request: the same rules and the same error codes as the DRF fields (required, null, blank,
max_length, invalid, min_value, not_a_dict), and the JSON types the schema promises, as
JsonBodySerializer does (no coercion of 0 to "0" or false), at a few microseconds an item.
Meaning (E.164, templates, encoding) is checked by the pipeline, not here.
"""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ErrorDetail, ValidationError

from messaging.models import MessageType

MISSING = object()


class _Invalid(Exception):
    def __init__(self, message: str, code: str) -> None:
        self.detail = ErrorDetail(message, code=code)


def _text(value, *, max_length: int, blank: bool = False, trim: bool = True) -> str:
    if value is None:
        raise _Invalid("This field may not be null.", "null")
    if not isinstance(value, str):  # no DRF coercion of 0 to "0": the schema promises a string
        raise _Invalid("Must be a JSON string.", "invalid")
    if "\x00" in value:
        raise _Invalid("Null characters are not allowed.", "null_characters_not_allowed")
    if trim:
        value = value.strip()
    if not value and not blank:
        raise _Invalid("This field may not be blank.", "blank")
    if len(value) > max_length:
        raise _Invalid(f"Ensure this field has no more than {max_length} characters.", "max_length")
    return value


def _to(value) -> str:
    return _text(value, max_length=40)


def _sender(value) -> str:
    return _text(value, max_length=60)


def _body(value) -> str:
    return _text(value, max_length=10000, blank=True, trim=False)


def _template(value) -> str:
    return _text(value, max_length=10000, blank=True)


def _dict(value) -> dict:
    if value is None:
        raise _Invalid("This field may not be null.", "null")
    if not isinstance(value, dict):
        raise _Invalid(f'Expected a dictionary of items but got type "{type(value).__name__}".', "not_a_dict")
    return value


def _message_type(value) -> str:
    return _text(value, max_length=10000)


def _region(value) -> str:
    return _text(value, max_length=2, blank=True)


def _when(value) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("Must be an ISO 8601 date-time string.", "invalid")
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but no date (year 0, February 30): parse_datetime raises rather than answer None
        parsed = None
    if parsed is None:
        raise _Invalid("Datetime has wrong format. Use one of these formats instead: "
                       "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].", "invalid")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def _seconds(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("Must be a JSON integer.", "invalid")
    number = value
    if number < 1:
        raise _Invalid("Ensure this value is greater than or equal to 1.", "min_value")
    return number


def _reference(value) -> str:
    return _text(value, max_length=128, blank=True)


def _json(value):
    if value is None:
        raise _Invalid("This field may not be null.", "null")
    return value


def _flag(value) -> bool:
    if value is None:
        raise _Invalid("This field may not be null.", "null")
    if not isinstance(value, bool):
        raise _Invalid("Must be a JSON boolean (true or false).", "invalid")
    return value


def _url(value) -> str:
    return _text(value, max_length=2000, blank=True)


def _zone(value) -> str:
    return _text(value, max_length=64, blank=True)


# wire name -> (argument name, reader, default when absent; MISSING: required)
FIELDS = {
    "to": ("to", _to, MISSING),
    "from": ("sender", _sender, MISSING),
    "text": ("text", _body, None),
    "template": ("template", _template, None),
    "variables": ("variables", _dict, {}),
    "message_type": ("message_type", _message_type, MessageType.TRANSACTIONAL),
    "region": ("region", _region, None),
    "scheduled_at": ("scheduled_at", _when, None),
    "validity_period": ("validity_period", _seconds, None),
    "client_reference": ("client_reference", _reference, ""),
    "metadata": ("metadata", _json, {}),
    "smart_encoding": ("smart_encoding", _flag, True),
    "callback_url": ("callback_url", _url, ""),
    "timezone": ("time_zone", _zone, None),
}


def message_fields_parse(data) -> dict:
    """message_prepare's keyword arguments from one send's JSON object; ValidationError naming every bad field."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [ErrorDetail(
            f"Invalid data. Expected a dictionary, but got {type(data).__name__}.", code="invalid")]})
    fields, problems = {}, {}
    for wire, (name, read, default) in FIELDS.items():
        value = data.get(wire, MISSING)
        if value is MISSING:
            if default is MISSING:
                problems[wire] = [ErrorDetail("This field is required.", code="required")]
            elif default is not None:
                fields[name] = default.copy() if isinstance(default, dict) else default
            continue
        try:
            fields[name] = read(value)
        except _Invalid as exc:
            problems[wire] = [exc.detail]
    if problems:
        raise ValidationError(problems)
    return fields


BATCH_MAX = 1000


def batch_parse(data) -> list[dict | ValidationError]:
    """POST /v1/messages/batch: {"defaults": {...}, "messages": [{...}, ...]} -> one entry per message:
    its arguments (defaults merged under the item), or the ValidationError of that item.

    The envelope itself is all or nothing: a ValidationError on `messages` or `defaults`."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [ErrorDetail(
            f"Invalid data. Expected a dictionary, but got {type(data).__name__}.", code="invalid")]})
    defaults, items = data.get("defaults", {}), data.get("messages", MISSING)
    if defaults is None or not isinstance(defaults, dict):
        raise ValidationError({"defaults": [ErrorDetail("Must be an object of fields every message gets.",
                                                        code="not_a_dict")]})
    if items is MISSING:
        raise ValidationError({"messages": [ErrorDetail("This field is required.", code="required")]})
    if not isinstance(items, list) or not items:
        raise ValidationError({"messages": [ErrorDetail("Must be a list of 1 to 1000 messages.", code="invalid")]})
    if len(items) > BATCH_MAX:
        raise ValidationError({"messages": [ErrorDetail(
            f"At most {BATCH_MAX} messages in one batch; this one has {len(items)}.", code="max_length")]})
    return [_item_parse(defaults, item) for item in items]


def _item_parse(defaults: dict, item) -> dict | ValidationError:
    try:
        return message_fields_parse({**defaults, **item} if isinstance(item, dict) else item)
    except ValidationError as exc:
        return exc
